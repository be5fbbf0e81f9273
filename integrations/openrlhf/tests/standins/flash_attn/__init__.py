"""Stand-in for flash-attn (CUDA only): see ../README.md."""
