"""The OT math, pure torch: the sorted-quantile AOT losses (``losses``) and their coupling
(``quantiles``), dominance statistics (``dominance``) and the sort across data-parallel ranks
(``distributed``). Nothing here knows of axolotl, TRL or trainers."""
