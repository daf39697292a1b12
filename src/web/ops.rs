//! Materializing documents to JS and applying recorded JS edits (to be written).
