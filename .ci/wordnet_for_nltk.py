"""Lay out Debian's WordNet 3.0 files as NLTK's `corpora/wordnet` (NLTK refuses symlinks out of its
data folder, and Debian does not ship the `lexnames` table, which is fixed by the WordNet format).

    python3 .ci/wordnet_for_nltk.py /usr/share/wordnet NLTK_DATA_DIR
"""

import shutil
import sys
from pathlib import Path

LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
POS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def main(source: str, nltk_data: str) -> None:
    target = Path(nltk_data) / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for path in Path(source).glob("*.*"):
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    lines = [f"{number:02d}\t{name}\t{POS[name.split('.')[0]]}\n" for number, name in enumerate(LEXNAMES)]
    (target / "lexnames").write_text("".join(lines), encoding="ascii")


if __name__ == "__main__":
    main(*sys.argv[1:])
