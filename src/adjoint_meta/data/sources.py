"""Every raw collaborative-filtering source, one entry each, and nothing about them elsewhere.

An entry (:class:`Source`) holds where the data comes from (the official archive, its
checksums, the file names accepted when placed by hand, the names a directory of local copies
may use), how to read it (``parse``: the parser in ``data/ratings.py`` that turns the file into a table
``user, item, rating``, named rather than imported, so the steps that only need the sources' names do
not depend on the parsers), the
filter rule for its items (``all_items``: a fixed item set kept whole, as Jester's 100 jokes;
otherwise the ``n_items`` most-rated), its rating scale, and the published dataset's size
beside the task count the paper reports.  The parameter schema's source names, the Snakemake
wildcard constraint and the CLI's choices are read from :data:`SOURCES`; adding a source means
adding an entry here (docs/architecture.md).

Checksums (the only place the project keeps them):

* Jester-1 ``jester_dataset_1_1.zip``: its published sha256 (docs/protocol.md names the file).
* MovieLens ``ml-100k.zip`` / ``ml-1m.zip``: sha256 (and size) from TensorFlow Datasets'
  recorded download checksums (tensorflow/datasets, ``tensorflow_datasets/url_checksums/movielens.txt``),
  and the md5 that GroupLens publishes beside each zip (``ml-100k.zip.md5``, ``ml-1m.zip.md5``; the
  same values are used by torchtext and other loaders).  Both are checked.  They could not be
  re-checked against the live server when this was written (no network), so a mismatch reports
  both values in full.
* Reference sha256 of plain files (``Source.known``) are informational: a hand-placed file that
  differs is still used, and ``raw.manifest`` records whether it matches.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SYNTHETIC = "synthetic"  # datasets.<name>.source of a generated family (adjoint_meta.data.synthetic)

# The module whose ``build`` makes a dataset's tasks, named rather than imported (like ``Source.parse``):
# a dataset's make-tasks job then depends on its own builder's code only (adjoint_meta.codedeps).
SYNTHETIC_BUILDER = "adjoint_meta.data.synthetic"
COLLAB_BUILDER = "adjoint_meta.data.collab"
BUILDERS = (SYNTHETIC_BUILDER, COLLAB_BUILDER)


def builder(source: str) -> str:
    """The module that builds the tasks of a dataset whose source is ``source``."""
    return SYNTHETIC_BUILDER if source == SYNTHETIC else COLLAB_BUILDER


@dataclass(frozen=True)
class Archive:
    """A zip that holds the ratings file ``member``; its checksums, where they are known."""
    file: str
    member: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def verified(self) -> bool:
        return bool(self.sha256 or self.md5)


@dataclass(frozen=True)
class Source:
    """One raw source: where it comes from, how to read it, and the published dataset's size."""
    name: str
    title: str
    url: str
    archive: Archive  # the official download (archive.file, archive.sha256, archive.member)
    files: tuple[str, ...]  # ratings files accepted as they are, most preferred first
    parse: str  # the function of adjoint_meta.data.ratings that reads the file into user, item, rating
    scale: tuple[float, float]  # the nominal rating range (nRMSE definition 3 divides by its width)
    paper_task_count: int  # tasks the paper reports, set beside ours
    published_ratings: int  # ratings in the complete published dataset (a smaller file is a partial copy)
    all_items: int | None = None  # items 0..all_items-1 kept whole (Jester); None: the n_items most-rated
    discrete: bool = True  # ratings take a few values (the summary counts each) or a continuum (a histogram)
    other_archives: tuple[Archive, ...] = ()  # further accepted archives (not downloadable)
    known: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256 of a known-good copy
    # names under which a directory of local copies may hold the ratings, beyond the accepted ones, and
    # the accepted name a match is copied in under (a partial copy of ML-1M, e.g.
    # ratings-users-1-2999.dat.gz, is still used: the report compares its size with the published one)
    copy_patterns: tuple[tuple[str, str], ...] = ()

    @property
    def archives(self) -> tuple[Archive, ...]:
        return (self.archive, *self.other_archives)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every file name that may be placed by hand, in the order ``raw.locate`` looks."""
        return (*self.files, *(a.file for a in self.archives))


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source(
        name="jester",
        title="Jester-1 (jester-data-1)",
        url="https://goldberg.berkeley.edu/jester-data/jester_dataset_1_1.zip",
        archive=Archive("jester_dataset_1_1.zip", "jester-data-1.xls",
                        sha256="cb7841756ded125b15f3d95c9f8241224065e96354c132a46ae4214deeab7615"),
        files=("jester-data-1.xls", "jester-data-1.csv"),
        parse="jester",
        scale=(-10.0, 10.0),
        paper_task_count=24983,
        published_ratings=1810455,
        all_items=100,
        discrete=False,
        # a zip holding the comma-separated export of the sheet
        other_archives=(Archive("jester-data-1.zip", "jester-data-1.csv"),),
        known={"jester-data-1.zip": "4adf783a1e03bd3be063315cb6e0a064fe63e983fd289d01b8e401a8e6c41e5f"},
    ),
    Source(
        name="ml100k",
        title="MovieLens-100K",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        archive=Archive("ml-100k.zip", "ml-100k/u.data",
                        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                        md5="0e33842e24a9c977be4e0107933c0723", size=4924029),
        files=("u.data",),
        parse="movielens_100k",
        scale=(1, 5),
        paper_task_count=489,
        published_ratings=100000,
        known={"u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"},
    ),
    Source(
        name="ml1m",
        title="MovieLens-1M",
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        archive=Archive("ml-1m.zip", "ml-1m/ratings.dat",
                        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                        md5="c4d9eecfca2ab87c1945afe126590906", size=5917549),
        files=("ratings.dat", "ratings.dat.gz"),  # the gzip of the same file is read as it is
        parse="movielens_1m",
        scale=(1, 5),
        paper_task_count=4985,
        published_ratings=1000209,
        copy_patterns=(("ratings*.dat.gz", "ratings.dat.gz"), ("ratings*.dat", "ratings.dat")),
    ),
)}
