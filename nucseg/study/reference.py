"""Reference figures that published work reports, for the result notebooks to show beside
nucseg's own tables. Nothing here was produced by nucseg; datasets and protocols differ."""

from importlib import resources


def reference_results() -> str:
    """The Markdown table of published figures, with their sources."""
    return resources.files("nucseg.study").joinpath("reference_results.md").read_text()
