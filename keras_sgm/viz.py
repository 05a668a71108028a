"""Figures of the paper's evaluation: t-SNE of the embedding, retrieval curves, F1 vs K, confusion.

Each function takes data (NumPy arrays, or the dicts of
`keras_sgm.evaluation.evaluate_embeddings`, also after a JSON round trip that
turned their keys into strings) and a path, writes a PNG there (creating
missing folders) and returns the path as a `pathlib.Path`.

Figures are drawn on matplotlib's Agg canvas directly (no `pyplot`), so they
work without a display and leave the caller's matplotlib backend alone.
matplotlib is imported when a function runs: `pip install matplotlib`.

Reference:
    Deep Metric Structured Learning For Facial Expression Recognition,
    Figures 2, 3 and 5.
"""

import pathlib

import numpy as np

from keras_sgm.retrieval import as_matrix

DPI = 100
"""Dots per inch of every figure: a `(w, h)`-inch figure is `100 w x 100 h` pixels."""


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("keras_sgm.viz needs matplotlib: `pip install matplotlib`.") from error
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _sorted_curve(values, name):
    """`{K: value}` (keys int or str) as two arrays sorted by K."""
    if not values:
        raise ValueError(f"{name} is empty; expected a dict {{K: value}}.")
    items = sorted((int(k), float(v)) for k, v in dict(values).items())
    return np.array([k for k, _ in items]), np.array([v for _, v in items])


def _class_name(class_names, label):
    if class_names is None:
        return str(label)
    if isinstance(class_names, dict):
        return str(class_names.get(label, label))
    return str(class_names[int(label)])


def plot_tsne(embeddings, labels, path, class_names=None, seed=0, max_points=3000):
    """2-D t-SNE map of the embeddings, one colour per class (the paper's Figure 2).

    Args:
        embeddings: float array `[n, dim]`, finite.
        labels: class labels `[n]`.
        path: str or path-like, the PNG to write (700 x 600 pixels).
        class_names: optional legend names: a sequence indexed by the
            (integer) class id, or a dict `{class id: name}`. Default: the ids.
        seed: int, default 0, the seed of the subsample and of t-SNE.
        max_points: int, default 3000. Above this many points a random
            subsample of this size (drawn with `seed`) is mapped: Barnes-Hut
            t-SNE costs `O(n log n)` and a crowded scatter shows no more.

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, numpy as np, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> x = np.random.default_rng(0).normal(size=(40, 5)) + np.repeat(np.eye(5)[:2] * 6, 20, 0)
        >>> out = plot_tsne(x, np.repeat([0, 1], 20), pathlib.Path(tempfile.mkdtemp()) / "tsne.png",
        ...                 class_names=["neutral", "happiness"])
        >>> out.stat().st_size > 0
        True

    Reference: van der Maaten and Hinton, Visualizing data using t-SNE (2008).
    """
    from sklearn.manifold import TSNE

    embeddings = as_matrix(embeddings, "embeddings")
    labels = np.asarray(labels)
    n = embeddings.shape[0]
    if labels.shape != (n,):
        raise ValueError(
            f"labels must have shape [{n}] (one per embedding); received shape {labels.shape}."
        )
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points; received {n}.")
    if n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        embeddings, labels, n = embeddings[keep], labels[keep], max_points
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, (n - 1) / 3.0),
        init="pca" if embeddings.shape[1] >= 2 else "random",
        method="barnes_hut",
        random_state=seed,
    )
    points = tsne.fit_transform(embeddings)

    classes = np.unique(labels)
    columns = 1 + (classes.size - 1) // 20  # legend columns beside the map
    figure = _figure(7 + 1.6 * columns if classes.size > 10 else 7, 6)
    from matplotlib import colormaps  # importable once _figure succeeded

    axes = figure.add_subplot()
    if classes.size <= 20:
        cmap = colormaps["tab10" if classes.size <= 10 else "tab20"]
        colors = [cmap(i) for i in range(classes.size)]
    else:  # e.g. DGMS sub-classes: evenly spaced hues
        colors = [colormaps["turbo"](i / (classes.size - 1)) for i in range(classes.size)]
    for i, label in enumerate(classes):
        mask = labels == label
        axes.scatter(
            points[mask, 0],
            points[mask, 1],
            s=6,
            alpha=0.7,
            color=colors[i],
            label=_class_name(class_names, label),
        )
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"t-SNE of {n} embeddings")
    if classes.size <= 10:
        axes.legend(markerscale=3, fontsize="small", loc="best")
    else:
        axes.legend(
            markerscale=3,
            fontsize="x-small",
            ncol=columns,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )
    return _save(figure, path)


def plot_retrieval_curves(recall_at_k, acc_at_k, path):
    """Recall@K and Acc@K against K on a log2 axis (the paper's Figure 3).

    Args:
        recall_at_k: dict `{K: recall}` (as returned by `recall_at_k`).
        acc_at_k: dict `{K: accuracy}`.
        path: str or path-like, the PNG to write (600 x 450 pixels).

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> out = plot_retrieval_curves({1: 0.8, 2: 0.9, 4: 0.95}, {1: 0.8, 2: 0.75, 4: 0.7},
        ...                             pathlib.Path(tempfile.mkdtemp()) / "retrieval.png")
        >>> out.suffix
        '.png'
    """
    curves = [
        (*_sorted_curve(values, name), name, marker)
        for values, name, marker in ((recall_at_k, "Recall@K", "o"), (acc_at_k, "Acc@K", "s"))
    ]
    figure = _figure(6, 4.5)
    axes = figure.add_subplot()
    for ks, ys, name, marker in curves:
        axes.plot(ks, 100 * ys, marker=marker, label=name)
    ks = np.union1d(curves[0][0], curves[1][0])
    lowest = min(ys.min() for _, ys, _, _ in curves)
    axes.set_xscale("log", base=2)
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_xlabel("K")
    axes.set_ylabel("%")
    axes.set_ylim(max(0.0, 10 * np.floor(10 * lowest) - 5), 101)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title("Retrieval")
    return _save(figure, path)


def plot_f1_vs_k(f1_vs_k, path):
    """The paper's F1 of the kNN classifier against K, best K marked (its Figure 5).

    Args:
        f1_vs_k: dict `{K: F1}` (as returned by `f1_vs_k`: `2PR / (P + R)`). The best K
            is the smallest K with the highest F1.
        path: str or path-like, the PNG to write (600 x 450 pixels).

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> out = plot_f1_vs_k({1: 0.70, 3: 0.74, 5: 0.76, 7: 0.75},
        ...                    pathlib.Path(tempfile.mkdtemp()) / "f1.png")
        >>> out.exists()
        True
    """
    ks, f1 = _sorted_curve(f1_vs_k, "f1_vs_k")
    best = int(np.argmax(f1))
    figure = _figure(6, 4.5)
    axes = figure.add_subplot()
    axes.plot(ks, 100 * f1, marker="o", markersize=4)
    axes.plot(
        ks[best],
        100 * f1[best],
        marker="*",
        markersize=16,
        color="tab:red",
        linestyle="none",
        label=f"best K = {ks[best]} (F1 {100 * f1[best]:.2f})",
    )
    axes.legend(loc="best")
    axes.set_xticks(ks if ks.size <= 25 else ks[:: int(np.ceil(ks.size / 25))])
    axes.set_xlabel("K (neighbours)")
    axes.set_ylabel("F1 = 2PR / (P + R) (%)")
    axes.grid(alpha=0.3)
    axes.set_title("kNN classification")
    return _save(figure, path)


def plot_retrieval_comparison(curves, path, title="Retrieval"):
    """Recall@K (solid) and Acc@K (dashed) of several methods on one plot (the paper's Figure 3).

    Args:
        curves: dict `{method label: (recall_at_k, acc_at_k)}`, each a dict
            `{K: value}` (keys int or str).
        path: str or path-like, the PNG to write (700 x 500 pixels).
        title: str, default `"Retrieval"`.

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> out = plot_retrieval_comparison(
        ...     {"SGMLoss": ({1: 0.8, 4: 0.95}, {1: 0.8, 4: 0.78}),
        ...      "TripletLoss": ({1: 0.78, 4: 0.97}, {1: 0.78, 4: 0.7})},
        ...     pathlib.Path(tempfile.mkdtemp()) / "retrieval.png")
        >>> out.exists()
        True
    """
    if not curves:
        raise ValueError("curves is empty; expected {method: (recall_at_k, acc_at_k)}.")
    figure = _figure(7, 5)
    axes = figure.add_subplot()
    every_k, lowest = np.array([], int), 1.0
    for index, (label, (recall, accuracy)) in enumerate(curves.items()):
        color = f"C{index % 10}"
        for values, name, style, marker in (
            (recall, "Recall@K", "-", "o"),
            (accuracy, "Acc@K", "--", "s"),
        ):
            ks, ys = _sorted_curve(values, f"{label} {name}")
            axes.plot(ks, 100 * ys, style, marker=marker, color=color, label=f"{label} {name}")
            every_k, lowest = np.union1d(every_k, ks), min(lowest, ys.min())
    axes.set_xscale("log", base=2)
    axes.set_xticks(every_k, [str(k) for k in every_k])
    axes.set_xlabel("K")
    axes.set_ylabel("%")
    axes.set_ylim(max(0.0, 10 * np.floor(10 * lowest) - 5), 101)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title(title)
    return _save(figure, path)


def plot_f1_vs_k_comparison(curves, path, title="kNN classification"):
    """F1 of the kNN classifier against K for several methods, each best K marked (Figure 5).

    Args:
        curves: dict `{method label: {K: F1}}` (keys int or str), as
            `evaluate_embeddings`' `f1_vs_k`.
        path: str or path-like, the PNG to write (700 x 500 pixels).
        title: str, default `"kNN classification"`.

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> curves = {"SGMLoss": {1: 0.7, 3: 0.75}, "TripletLoss": {1: 0.72, 3: 0.7}}
        >>> out = plot_f1_vs_k_comparison(curves, pathlib.Path(tempfile.mkdtemp()) / "f1.png")
        >>> out.exists()
        True
    """
    if not curves:
        raise ValueError("curves is empty; expected {method: {K: F1}}.")
    figure = _figure(7, 5)
    axes = figure.add_subplot()
    every_k = np.array([], int)
    for index, (label, values) in enumerate(curves.items()):
        ks, f1 = _sorted_curve(values, f"{label} f1_vs_k")
        best = int(np.argmax(f1))
        color = f"C{index % 10}"
        axes.plot(ks, 100 * f1, marker="o", markersize=4, color=color, label=label)
        axes.plot(
            ks[best],
            100 * f1[best],
            marker="*",
            markersize=14,
            color=color,
            linestyle="none",
            label=f"{label}: best K = {ks[best]} ({100 * f1[best]:.2f})",
        )
        every_k = np.union1d(every_k, ks)
    axes.set_xticks(every_k if every_k.size <= 25 else every_k[:: int(np.ceil(every_k.size / 25))])
    axes.set_xlabel("K (neighbours)")
    axes.set_ylabel("F1 = 2PR / (P + R) (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title(title)
    return _save(figure, path)


def plot_reliability(curves, path, title="Reliability"):
    """Reliability diagram: accuracy against confidence per bin, one line per set of probabilities.

    Args:
        curves: dict `{label: reliability}`, each as
            `keras_sgm.evaluation.calibration.reliability` returns it (empty
            bins are skipped); a perfectly calibrated model lies on the diagonal.
        path: str or path-like, the PNG to write (600 x 500 pixels).
        title: str, the figure's title.

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> curve = {"confidence": [0.55, None, 0.9], "accuracy": [0.5, None, 0.8],
        ...          "count": [10, 0, 30]}
        >>> plot_reliability({"Bayes": curve}, pathlib.Path(tempfile.mkdtemp()) / "r.png").exists()
        True
    """
    if not curves:
        raise ValueError("plot_reliability needs at least one curve.")
    figure = _figure(6, 5)
    axes = figure.add_subplot()
    axes.plot([0, 100], [0, 100], color="gray", linestyle="--", linewidth=1, label="calibrated")
    for label, curve in curves.items():
        points = [
            (100 * p, 100 * a)
            for p, a, n in zip(curve["confidence"], curve["accuracy"], curve["count"])
            if n
        ]
        if points:
            x, y = zip(*points)
            axes.plot(x, y, marker="o", markersize=4, label=label)
    axes.set_xlabel("confidence (largest probability, %)")
    axes.set_ylabel("accuracy (%)")
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    axes.set_title(title)
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_confusion_matrix(matrix, class_names, path):
    """Confusion matrix: counts written in the cells, colours by share of the true class.

    Colouring by row share (per-class recall) keeps small classes readable
    next to large ones, as in imbalanced facial-expression datasets.

    Args:
        matrix: int array `[c, c]`, rows true classes, columns predictions
            (as in `evaluate_embeddings(...)["confusion_matrix"]`).
        class_names: `c` names in the matrix's order, or None for `0..c-1`.
        path: str or path-like, the PNG to write (about `60 c + 200` pixels
            a side, at least 450).

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> out = plot_confusion_matrix([[5, 1], [2, 7]], ["neutral", "happiness"],
        ...                             pathlib.Path(tempfile.mkdtemp()) / "confusion.png")
        >>> out.name
        'confusion.png'
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix must be square [c, c]; received shape {matrix.shape}.")
    c = matrix.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(c)]
    class_names = [str(name) for name in class_names]
    if len(class_names) != c:
        raise ValueError(f"class_names has {len(class_names)} names for a {c} x {c} matrix.")
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)

    side = max(4.5, 0.6 * c + 2.0)
    figure = _figure(side, side)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    for i in range(c):
        for j in range(c):
            axes.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize="small",
                color="white" if share[i, j] > 0.5 else "black",
            )
    axes.set_xticks(range(c), class_names, rotation=45, ha="right")
    axes.set_yticks(range(c), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix")
    return _save(figure, path)


_TILE = 0.7
"""Inches a side of one thumbnail in `plot_group_grid`."""

_SHEET_TILE = 1.5
"""Inches a side of one image in `plot_contact_sheet`."""


def _as_images(images):
    """Images as float32 `[n, h, w, c]` (c = 1 or 3) clipped to [0, 1]; ValueError otherwise."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or 0 in images.shape:
        raise ValueError(
            "images must have shape [n, h, w], [n, h, w, 1] or [n, h, w, 3] with n > 0; "
            f"received shape {images.shape}."
        )
    bad = ~np.isfinite(images).reshape(images.shape[0], -1).all(axis=1)
    if bad.any():
        raise ValueError(f"image {int(np.flatnonzero(bad)[0])} contains NaN or inf.")
    return np.clip(images, 0.0, 1.0)


def _show(axes, image, **kwargs):
    """Draw one `[h, w, c]` image in [0, 1] without ticks."""
    if image.shape[-1] == 1:
        axes.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, **kwargs)
    else:
        axes.imshow(image, **kwargs)
    axes.set_xticks([])
    axes.set_yticks([])


def _group_tiles(group, n, top_k):
    """Indices to draw for a group: its medoid, then its other members nearest first."""
    medoid = int(group.medoid)
    tiles = [medoid] + [int(i) for i in group.members if int(i) != medoid][: top_k - 1]
    outside = [i for i in tiles if not 0 <= i < n]
    if outside:
        raise ValueError(f"group with medoid {medoid} names image {outside[0]}, outside [0, {n}).")
    return tiles


def plot_group_grid(images, groups, path, top_k=16, class_names=None, max_groups=None):
    """One row per group: its Top-k images, medoid first and outlined (the paper's Figure 8).

    Args:
        images: float array `[n, h, w]`, `[n, h, w, 1]` or `[n, h, w, 3]` in
            [0, 1], the images the groups' indices point into.
        groups: sequence of `keras_sgm.dgms.groups.Group` (from `find_groups`);
            each row shows the group's medoid and then its other members in
            the group's order (nearest to the medoid first), `top_k` at most.
        path: str or path-like, the PNG to write, `70 top_k + 30` pixels wide
            and `100 g + 20` high for `g` groups shown.
        top_k: positive int, default 16 (the paper's): images per row.
        class_names: optional names of the groups' labels: a sequence indexed
            by the (integer) class id, or a dict `{class id: name}`.
        max_groups: optional positive int: show only the first this many
            groups.

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, numpy as np, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> from keras_sgm.dgms.groups import find_groups
        >>> images = np.random.default_rng(0).uniform(size=(12, 8, 8, 1))
        >>> groups = find_groups(images.reshape(12, -1), n_groups=2, labels=[0, 1] * 6)
        >>> out = plot_group_grid(images, groups, pathlib.Path(tempfile.mkdtemp()) / "groups.png",
        ...                       top_k=4, class_names=["neutral", "happiness"])
        >>> out.stat().st_size > 0
        True

    Reference:
        Deep Metric Structured Learning For Facial Expression Recognition,
        section 4.2.3 and Figure 8 (the Top-16 of groups of happiness).
    """
    images = _as_images(images)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer; received {top_k!r}.")
    groups = list(groups)
    if max_groups is not None:
        if isinstance(max_groups, bool) or not isinstance(max_groups, (int, np.integer)):
            raise ValueError(f"max_groups must be a positive integer; received {max_groups!r}.")
        if max_groups < 1:
            raise ValueError(f"max_groups must be a positive integer; received {max_groups!r}.")
        groups = groups[:max_groups]
    if not groups:
        raise ValueError("groups is empty; expected at least one group.")
    n, h, w, c = images.shape
    rows = [_group_tiles(group, n, top_k) for group in groups]
    pad = max(1, w // 8)
    width = top_k * w + (top_k - 1) * pad

    figure = _figure(_TILE * top_k + 0.3, (_TILE + 0.3) * len(groups) + 0.2)
    from matplotlib.patches import Rectangle  # importable once _figure succeeded

    for row, (group, tiles) in enumerate(zip(groups, rows)):
        mosaic = np.ones((h, width, c), np.float32)
        for j, index in enumerate(tiles):
            mosaic[:, j * (w + pad) : j * (w + pad) + w] = images[index]
        axes = figure.add_subplot(len(groups), 1, row + 1)
        _show(axes, mosaic)
        for spine in axes.spines.values():
            spine.set_visible(False)
        axes.add_patch(
            Rectangle(
                (-0.5, -0.5), w, h, fill=False, edgecolor="tab:red", linewidth=2.5, clip_on=False
            )
        )
        size = len(group.members)
        name = "" if group.label is None else f"{_class_name(class_names, group.label)}: "
        axes.set_title(
            f"{name}group {row + 1}, {size} image{'s' if size != 1 else ''}",
            loc="left",
            fontsize="small",
        )
    return _save(figure, path)


def _short(title, limit=20):
    """`title`, shortened to `limit` characters by an ellipsis in the middle where longer."""
    if len(title) <= limit:
        return title
    head = limit // 2 - 1
    return f"{title[:head]}...{title[-(limit - head - 3) :]}"


def plot_contact_sheet(images, path, titles=None, columns=None):
    """A grid of images, e.g. the ones chosen to summarize an album.

    Args:
        images: float array `[n, h, w]`, `[n, h, w, 1]` or `[n, h, w, 3]` in
            [0, 1], drawn left to right, top to bottom.
        path: str or path-like, the PNG to write: `150 columns + 20` pixels
            wide, `150 rows + 20` high (`180 rows + 20` with titles).
        titles: optional `n` strings (e.g. file names) written above the
            images; long ones are shortened in the middle.
        columns: optional positive int, default `ceil(sqrt(n))`.

    Returns:
        The `pathlib.Path` written.

    Examples:
        >>> import pathlib, tempfile, numpy as np, pytest
        >>> _ = pytest.importorskip("matplotlib")
        >>> images = np.random.default_rng(0).uniform(size=(5, 8, 8, 3))
        >>> out = plot_contact_sheet(images, pathlib.Path(tempfile.mkdtemp()) / "sheet.png",
        ...                          titles=[f"photo_{i}.jpg" for i in range(5)])
        >>> out.suffix
        '.png'
    """
    images = _as_images(images)
    n = images.shape[0]
    if titles is not None:
        titles = [str(t) for t in titles]
        if len(titles) != n:
            raise ValueError(f"titles has {len(titles)} entries for {n} images; pass one each.")
    if columns is None:
        columns = int(np.ceil(np.sqrt(n)))
    elif isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer; received {columns!r}.")
    columns = int(min(columns, n))
    rows = int(np.ceil(n / columns))
    title_room = 0.3 if titles is not None else 0.0
    figure = _figure(_SHEET_TILE * columns + 0.2, (_SHEET_TILE + title_room) * rows + 0.2)
    for i in range(n):
        axes = figure.add_subplot(rows, columns, i + 1)
        _show(axes, images[i])
        if titles is not None:
            axes.set_title(_short(titles[i]), fontsize="small")
    return _save(figure, path)
