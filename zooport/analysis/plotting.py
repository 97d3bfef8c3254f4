"""matplotlib, imported lazily with the non-interactive Agg backend; figures saved atomically as PNG."""
from __future__ import annotations

import io


def figure(w: float = 6, h: float = 4, nrows: int = 1, ncols: int = 1):
    """A new (figure, axes) pair; matplotlib is imported here, never at ``import zooport``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(w, h), squeeze=nrows * ncols == 1)


def save(fig, path, dpi: int = 100) -> None:
    """Render to PNG in memory, then write atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    from .._io import atomic_write

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
