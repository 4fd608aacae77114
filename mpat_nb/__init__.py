"""mpat_nb: a teachable PyTorch re-implementation of "Multi-person Articulated Tracking with Spatial
and Temporal Embeddings" (Jin, Liu, Ouyang, Qian, CVPR 2019)."""

__version__ = "0.1.0"
