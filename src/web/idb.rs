//! IndexedDB storage (to be written).
