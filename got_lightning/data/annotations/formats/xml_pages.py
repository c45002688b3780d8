"""PAGE-XML (2013, 2019: Transkribus, eScriptorium, OCR-D) and ALTO (v2 to v4: libraries'
digitisation) ground truth: one record per page, per text region or per text line, the region and
line records cut to the element's box on their page.

Text is in reading order (PAGE's `ReadingOrder`, else document order; ALTO: document order), a
region's lines joined by newlines, lines kept in the order the file gives them (vertical text as
written). Of several PAGE `TextEquiv`s, the one marked ground truth wins, else `index="0"`, else
the first. ALTO `String`s of a line are joined by one space. The standard library's parser is
enough: it fetches no external entity, and expat bounds entity expansion."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from got_lightning.data.annotations.index import MemoryIndex
from got_lightning.data.errors import BadSampleError
from got_lightning.data.images.regions import Region, bounding_box
from got_lightning.data.sample import ResolvedImage

GROUND_TRUTH = re.compile(r"ground[ -_]?truth|^gt$", re.IGNORECASE)


@dataclass
class TextElement:
    """A region or line: its id, text, box and outline (and a region's lines)."""

    id: str
    text: str
    box: tuple[int, int, int, int] | None
    polygon: tuple[tuple[int, int], ...] | None
    lines: list[TextElement] = field(default_factory=list)


@dataclass
class XmlPage:
    """One page of ground truth: its image file and its regions in reading order."""

    image: str
    regions: list[TextElement]

    @property
    def text(self) -> str:
        return "\n".join(region.text for region in self.regions if region.text)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _points(text: str | None) -> tuple[tuple[int, int], ...] | None:
    """`x,y x,y ...` (PAGE, ALTO) or `x y x y ...` (some ALTO writers) as integer points."""
    if not text or not text.strip():
        return None
    numbers = [round(float(value)) for value in re.split(r"[\s,]+", text.strip())]
    if len(numbers) < 6 or len(numbers) % 2:
        raise ValueError(f"not a polygon: {text[:60]!r}")
    return tuple(zip(numbers[::2], numbers[1::2]))


def read_page_xml(path: Path) -> XmlPage:
    root = ElementTree.parse(path).getroot()
    pages = [element for element in root.iter() if _local(element.tag) == "Page"]
    if _local(root.tag) != "PcGts" or not pages:
        raise BadSampleError(f"{path} is not PAGE-XML (no PcGts/Page)")
    page = pages[0]
    image = page.get("imageFilename")
    if not image:
        raise BadSampleError(f"{path}: Page has no imageFilename")
    regions = {}
    for element in page.iter():
        if _local(element.tag) == "TextRegion":
            region = _page_element(element, path)
            region.lines = [_page_element(line, path) for line in _children(element, "TextLine")]
            if region.lines:
                region.text = "\n".join(line.text for line in region.lines if line.text)
            regions[region.id] = region
    order = _reading_order(page)
    ordered = [regions[name] for name in order if name in regions]
    ordered += [region for name, region in regions.items() if name not in set(order)]
    return XmlPage(image, ordered)


def _page_element(element: ElementTree.Element, path: Path) -> TextElement:
    identifier = element.get("id") or "?"
    coords = _children(element, "Coords")
    polygon = None
    if coords:
        try:
            polygon = _points(coords[0].get("points")) or _points(
                " ".join(f"{point.get('x')},{point.get('y')}" for point in _children(coords[0], "Point"))
            )
        except ValueError as error:
            raise BadSampleError(f"{path}: {_local(element.tag)} {identifier}: Coords {error}") from error
    return TextElement(identifier, _text_equiv(element), bounding_box(list(polygon)) if polygon else None, polygon)


def _text_equiv(element: ElementTree.Element) -> str:
    candidates = _children(element, "TextEquiv")
    if not candidates:
        return ""
    marked = [
        c for c in candidates if any(GROUND_TRUTH.search(c.get(key) or "") for key in ("dataType", "dataTypeDetails", "comments"))
    ]
    first = [c for c in candidates if c.get("index") == "0"]
    chosen = (marked or first or candidates)[0]
    unicode = _children(chosen, "Unicode")
    return (unicode[0].text or "") if unicode else ""


def _reading_order(page: ElementTree.Element) -> list[str]:
    """Region ids in PAGE's ReadingOrder, groups flattened in their `index` order."""
    orders = _children(page, "ReadingOrder")
    if not orders:
        return []

    def flatten(group: ElementTree.Element) -> list[str]:
        members = sorted(
            (child for child in group if _local(child.tag).startswith(("RegionRef", "OrderedGroup", "UnorderedGroup"))),
            key=lambda child: int(child.get("index", "0")),
        )
        ids = []
        for member in members:
            if _local(member.tag).startswith("RegionRef"):
                ids.append(member.get("regionRef"))
            else:
                ids += flatten(member)
        return ids

    return [name for group in orders[0] for name in flatten(group)]


def read_alto(path: Path) -> XmlPage:
    root = ElementTree.parse(path).getroot()
    if _local(root.tag) != "alto":
        raise BadSampleError(f"{path} is not ALTO (root element {_local(root.tag)!r})")
    unit = next((element.text for element in root.iter() if _local(element.tag) == "MeasurementUnit"), "pixel")
    if (unit or "pixel").strip() != "pixel":
        raise BadSampleError(f"{path}: MeasurementUnit {unit!r} is not supported (pixel only)")
    names = [element.text for element in root.iter() if _local(element.tag) == "fileName" and element.text]
    if not names:
        raise BadSampleError(f"{path}: no Description/sourceImageInformation/fileName names the page image")
    regions = []
    for block in (element for element in root.iter() if _local(element.tag) == "TextBlock"):
        region = _alto_element(block, path)
        region.lines = [_alto_element(line, path) for line in block.iter() if _local(line.tag) == "TextLine"]
        region.text = "\n".join(line.text for line in region.lines if line.text)
        regions.append(region)
    return XmlPage(names[0].strip(), regions)


def _alto_element(element: ElementTree.Element, path: Path) -> TextElement:
    identifier = element.get("ID") or "?"
    try:
        x, y, width, height = (round(float(element.get(key, "nan"))) for key in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
        box = (x, y, x + width, y + height)
    except ValueError:
        box = None
    polygon = None
    for shape in (child for child in element if _local(child.tag) == "Shape"):
        for outline in (child for child in shape if _local(child.tag) == "Polygon"):
            try:
                polygon = _points(outline.get("POINTS"))
            except ValueError as error:
                raise BadSampleError(f"{path}: {_local(element.tag)} {identifier}: Polygon {error}") from error
    words = []
    for child in element:
        if _local(child.tag) == "String":
            words.append(child.get("CONTENT") or "")
        elif _local(child.tag) == "HYP" and words:
            words[-1] += child.get("CONTENT") or ""
    return TextElement(identifier, " ".join(word for word in words if word), box, polygon)


def index_xml_pages(
    folder: Path, dataset: str, kind: str, level: str, question: str, image_root: Path | None, mask: bool
) -> MemoryIndex:
    """Every `*.xml` under `folder` (sorted) as records of `level` (`page`, `region`, `line`)."""
    reader = read_page_xml if kind == "pagexml" else read_alto
    items = []
    for path in sorted(folder.rglob("*.xml")) if folder.is_dir() else [folder]:
        try:
            page = reader(path)
            image = _find_image(path, page.image, image_root)
        except (BadSampleError, ElementTree.ParseError, OSError) as error:
            reason = error.reason if isinstance(error, BadSampleError) else f"{path}: {error}"
            items.append(({"image": path.name}, None, reason))
            continue
        base = folder.resolve() if folder.is_dir() else folder.resolve().parent
        ref = image.relative_to(base).as_posix() if image.is_relative_to(base) else str(image)
        if level == "page":
            problem = None if page.text else f"{path}: no text on the page"
            items.append((_record(ref, page.text, question), [ResolvedImage(ref, (image,))], problem))
            continue
        elements = page.regions if level == "region" else [line for region in page.regions for line in region.lines]
        for element in elements:
            if element.box is None:
                items.append(({"image": ref}, None, f"{path}: {level} {element.id} has no coordinates"))
                continue
            cut = Region(element.box, element.polygon, mask)
            # The page's image names every record cut from it: the held-out split keeps a page whole.
            problem = None if element.text else f"{path}: {level} {element.id} has no text"
            items.append((_record(ref, element.text, question), [ResolvedImage(ref, (image,), region=cut)], problem))
    return MemoryIndex.of(folder, dataset, items)


def _record(image: str, text: str, question: str) -> dict:
    return {"image": image, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": text}]}


def _find_image(xml: Path, name: str, image_root: Path | None) -> Path:
    """The page image a file names: under `image_root` when given, else beside the XML file or in
    its parent folder (Transkribus exports keep XML in `page/` beside the images)."""
    candidates = (
        [image_root / name, image_root / Path(name).name] if image_root else [xml.parent / name, xml.parent.parent / name]
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise BadSampleError(f"{xml}: page image {name!r} not found (looked at {', '.join(str(c) for c in candidates)})")
