"""affsr: amortised MAP super-resolution with guaranteed consistency (Sønderby et al., ICLR 2017)."""

__version__ = "0.1.0"
