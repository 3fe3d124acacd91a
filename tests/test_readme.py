"""README.md says what a newcomer needs, and its generated tables are fresh."""

from course_utils import config
from course_utils.tools import pipeline, readme


def test_generated_tables_are_fresh():
    for path in readme.READMES:
        text = path.read_text(encoding="utf-8")
        assert readme.refresh(text) == text, f"{path.name} is stale: run `make build`"


def test_readme_gives_the_two_commands_and_the_sections_a_newcomer_needs():
    text = (config.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for needle in ("make lab", "make test", "check(", "course grade", "make test-gpu", "COURSE_DEVICE", "make build", "course data --list"):
        assert needle in text, needle


def test_every_chapter_has_badges_for_its_three_variants_in_readme():
    text = (config.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for chapter in pipeline.all_chapters():
        for path in (chapter.full, chapter.exercises, chapter.solutions):
            assert pipeline.badge_line(path).split(") [![")[0] in text
