//! hark-engine: tensors, dtypes, runtime-selected kernels, ops, KV cache, delegates.
