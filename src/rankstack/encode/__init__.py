"""Text encoders (sentence-transformers, ONNX Runtime) behind one interface: ``encode(texts)``.

Importing this package is light: torch, onnxruntime and tokenizers load when an encoder is built.
"""

from rankstack.encode.base import Encoder, cached_encode, load_encoder

__all__ = ["Encoder", "load_encoder", "cached_encode"]
