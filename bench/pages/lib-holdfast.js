// W6: what an app ships when it imports holdfast (the whole public API).
export * from "../../pkg/index.js";
