"""Read a rendered report back with Python's HTML parser: its elements, its text and its figures.

``data-figure`` elements give each figure's exact value (``value``) and the
text a reader sees; charts are read from their SVG rectangles.
"""

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]


class ParsedPage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.figures: dict[str, tuple[str, str]] = {}
        self.text: list[str] = []
        self._open_figure: list[tuple[str, str, list[str]]] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.elements.append(Element(tag, attributes))
        if tag == "data" and "data-figure" in attributes:
            self._open_figure.append((attributes["data-figure"], attributes.get("value") or "", []))
        if tag in ("style", "title", "desc"):
            self._in.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "data" and self._open_figure:
            name, value, parts = self._open_figure.pop()
            self.figures[name] = (value, "".join(parts).strip())
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open_figure:
            parts.append(data)
        if "style" not in self._in:
            self.text.append(data)

    @property
    def visible_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def value(self, name: str) -> str:
        return self.figures[name][0]

    def shown(self, name: str) -> str:
        return self.figures[name][1]

    def tags(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


def parse_page(html: str) -> ParsedPage:
    page = ParsedPage()
    page.feed(html)
    page.close()
    return page
