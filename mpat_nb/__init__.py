"""mpat_nb: a teachable PyTorch re-implementation of "Multi-person Articulated Tracking with Spatial
and Temporal Embeddings" (Jin, Liu, Ouyang, Qian, CVPR 2019).

The method as this package implements it is described in ``docs/method.md`` (with a table paper concept ->
module at its top), the PoseTrack metrics in ``docs/evaluation.md``. Comments and docstrings cite them by
section: "docs/method.md 3.2" means section 3.2, "docs/method.md 2.6, Eq. (3)" the third equation of that
section, "docs/method.md 6, choice 14" row 14 of its table of open choices, and "docs/evaluation.md §4.3"
section 4.3 of the evaluation document. Tags: [Supp] from the paper's supplementary material, [B] from a base method
(e.g. Associative Embedding), [I] our interpretation or choice.
"""

__version__ = "0.1.0"
