"""Who crosses where, and how many: the traffic profile of each checkpoint.

A profile is an entry mix and an exit mix of (nationality, purpose, events per day) for
an average weekday; :mod:`load_tests.scenario.model` lays the weekly and daily rhythm on
top and the generator adds noise and anomalies. The numbers live apart from the code
because they are what a reader checks against reality and what grows when the reference
file gains a checkpoint (one without a profile here gets :func:`fallback_profile`).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.domain.registry import Checkpoint

#: The checkpoint whose volume ``other_scale`` never touches: it carries the headline case.
HEADLINE_CHECKPOINT = "zhibek-zholy"

# Zhibek Zholy entries: the UZB total is the figure officials quote, labour is the part
# that surges. Kept as constants so the surge factor and the profile cannot drift apart.
ZZ_UZB_ENTRIES_PER_DAY = 1500
ZZ_UZB_LABOUR_ENTRIES_PER_DAY = 1200
ZZ_UZB_ENTRIES_AT_SURGE = 4000


#: (nationality, purpose, events per day at weekday factor 1)
Mix = tuple[tuple[str, str, float], ...]


@dataclass(frozen=True)
class Profile:
    entry: Mix
    exit: Mix


# Volumes are per day for the average weekday. Zhibek Zholy: 1,500 UZB + 200 other
# entries and 1,100 exits; the other thirteen together 2,500 events/day.
PROFILES: dict[str, Profile] = {
    "zhibek-zholy": Profile(
        entry=(
            ("UZB", "labour", ZZ_UZB_LABOUR_ENTRIES_PER_DAY),
            ("UZB", "private", 150),
            ("UZB", "business", 60),
            ("UZB", "transit", 80),
            ("UZB", "repatriate", 10),
            ("KAZ", "private", 70),
            ("KAZ", "business", 20),
            ("TJK", "labour", 40),
            ("TJK", "transit", 15),
            ("KGZ", "labour", 15),
            ("KGZ", "private", 5),
            ("TKM", "transit", 10),
            ("RUS", "private", 10),
            ("AFG", "refugee", 5),
            ("TUR", "business", 5),
            ("CHN", "business", 5),
        ),
        exit=(
            ("UZB", "labour", 600),
            ("UZB", "private", 160),
            ("UZB", "business", 60),
            ("UZB", "transit", 40),
            ("KAZ", "private", 120),
            ("KAZ", "business", 40),
            ("KAZ", "labour", 20),
            ("TJK", "labour", 30),
            ("KGZ", "labour", 10),
            ("RUS", "transit", 10),
            ("TKM", "transit", 10),
        ),
    ),
    "kazygurt": Profile(
        entry=(
            ("TJK", "labour", 170),
            ("TJK", "transit", 30),
            ("TJK", "private", 20),
            ("UZB", "labour", 90),
            ("UZB", "private", 30),
            ("UZB", "business", 10),
            ("KAZ", "private", 30),
            ("KGZ", "labour", 10),
            ("AFG", "refugee", 5),
            ("TKM", "transit", 5),
        ),
        exit=(
            ("TJK", "labour", 90),
            ("TJK", "private", 20),
            ("UZB", "labour", 80),
            ("UZB", "private", 30),
            ("KAZ", "private", 50),
            ("KAZ", "business", 20),
            ("KGZ", "labour", 10),
        ),
    ),
    "atameken": Profile(
        entry=(
            ("UZB", "labour", 30),
            ("UZB", "private", 15),
            ("UZB", "business", 5),
            ("KAZ", "private", 12),
            ("TJK", "labour", 3),
        ),
        exit=(
            ("UZB", "labour", 20),
            ("UZB", "private", 15),
            ("KAZ", "private", 15),
            ("KAZ", "business", 5),
        ),
    ),
    "kaplanbek": Profile(
        entry=(
            ("UZB", "labour", 25),
            ("UZB", "private", 12),
            ("UZB", "business", 5),
            ("UZB", "repatriate", 3),
            ("KAZ", "private", 10),
        ),
        exit=(
            ("UZB", "labour", 15),
            ("UZB", "private", 12),
            ("KAZ", "private", 13),
            ("KAZ", "business", 5),
        ),
    ),
    # Uzbek side of Zhibek Zholy: country_a is UZB, so "entry" means into Uzbekistan.
    "gishtkuprik": Profile(
        entry=(
            ("UZB", "labour", 45),
            ("UZB", "private", 20),
            ("KAZ", "private", 15),
            ("KAZ", "business", 5),
            ("TJK", "transit", 5),
        ),
        exit=(
            ("UZB", "labour", 60),
            ("UZB", "private", 20),
            ("UZB", "business", 10),
            ("KAZ", "private", 15),
            ("TJK", "transit", 5),
        ),
    ),
    "korday": Profile(
        entry=(
            ("KGZ", "labour", 90),
            ("KGZ", "private", 50),
            ("KGZ", "business", 30),
            ("KAZ", "private", 40),
            ("KAZ", "business", 15),
            ("TJK", "labour", 15),
            ("UZB", "labour", 10),
            ("RUS", "tourist", 5),
            ("CHN", "business", 3),
            ("AFG", "refugee", 2),
        ),
        exit=(
            ("KGZ", "labour", 60),
            ("KGZ", "private", 50),
            ("KGZ", "business", 25),
            ("KAZ", "private", 50),
            ("KAZ", "business", 20),
            ("KAZ", "tourist", 20),
            ("TJK", "labour", 5),
            ("UZB", "labour", 5),
            ("RUS", "tourist", 5),
        ),
    ),
    "karasu": Profile(
        entry=(
            ("KGZ", "labour", 20),
            ("KGZ", "private", 12),
            ("KGZ", "business", 6),
            ("KAZ", "private", 12),
        ),
        exit=(
            ("KGZ", "labour", 15),
            ("KGZ", "private", 12),
            ("KAZ", "private", 15),
            ("KAZ", "business", 8),
        ),
    ),
    "kegen": Profile(
        entry=(
            ("KGZ", "private", 8),
            ("KGZ", "business", 3),
            ("KAZ", "private", 6),
            ("KAZ", "tourist", 3),
        ),
        exit=(
            ("KGZ", "private", 7),
            ("KGZ", "business", 2),
            ("KAZ", "private", 7),
            ("KAZ", "tourist", 4),
        ),
    ),
    "nur-zholy": Profile(
        entry=(
            ("CHN", "business", 40),
            ("KAZ", "business", 30),
            ("CHN", "tourist", 8),
            ("KAZ", "private", 7),
            ("CHN", "repatriate", 3),
            ("CHN", "labour", 2),
        ),
        exit=(
            ("CHN", "business", 40),
            ("KAZ", "business", 35),
            ("KAZ", "tourist", 10),
            ("CHN", "tourist", 5),
        ),
    ),
    "dostyk": Profile(
        entry=(
            ("CHN", "business", 12),
            ("KAZ", "business", 8),
            ("CHN", "labour", 3),
            ("CHN", "repatriate", 2),
        ),
        exit=(("CHN", "business", 12), ("KAZ", "business", 10), ("KAZ", "private", 3)),
    ),
    "zhaisan": Profile(
        entry=(
            ("RUS", "private", 10),
            ("KAZ", "private", 10),
            ("RUS", "business", 5),
            ("UZB", "transit", 4),
            ("RUS", "repatriate", 3),
            ("RUS", "tourist", 3),
        ),
        exit=(
            ("KAZ", "private", 10),
            ("RUS", "private", 10),
            ("UZB", "transit", 8),
            ("UZB", "labour", 4),
            ("RUS", "business", 3),
        ),
    ),
    "ala-airport": Profile(
        entry=(
            ("KAZ", "private", 45),
            ("KAZ", "tourist", 15),
            ("KAZ", "business", 15),
            ("RUS", "tourist", 15),
            ("RUS", "business", 8),
            ("TUR", "business", 8),
            ("TUR", "tourist", 7),
            ("CHN", "business", 8),
            ("CHN", "tourist", 4),
            ("UZB", "labour", 5),
            ("KGZ", "private", 4),
            ("TJK", "labour", 4),
            ("DEU", "tourist", 4),
            ("KOR", "business", 4),
            ("USA", "business", 3),
            ("AFG", "refugee", 1),
        ),
        exit=(
            ("KAZ", "tourist", 40),
            ("KAZ", "private", 30),
            ("KAZ", "business", 15),
            ("RUS", "tourist", 15),
            ("RUS", "business", 7),
            ("TUR", "business", 8),
            ("TUR", "tourist", 7),
            ("CHN", "business", 8),
            ("CHN", "tourist", 4),
            ("UZB", "labour", 4),
            ("DEU", "tourist", 4),
            ("KOR", "business", 5),
            ("USA", "business", 3),
        ),
    ),
    "nqz-airport": Profile(
        entry=(
            ("KAZ", "private", 15),
            ("KAZ", "business", 10),
            ("RUS", "business", 8),
            ("RUS", "private", 6),
            ("TUR", "business", 6),
            ("CHN", "business", 4),
            ("DEU", "business", 3),
            ("GBR", "business", 3),
        ),
        exit=(
            ("KAZ", "private", 14),
            ("KAZ", "business", 10),
            ("KAZ", "tourist", 6),
            ("RUS", "business", 8),
            ("RUS", "private", 5),
            ("TUR", "business", 6),
            ("CHN", "business", 3),
            ("DEU", "business", 3),
        ),
    ),
    "cit-airport": Profile(
        entry=(
            ("KAZ", "private", 5),
            ("KAZ", "business", 2),
            ("TUR", "business", 3),
            ("RUS", "private", 3),
            ("UZB", "private", 2),
        ),
        exit=(
            ("KAZ", "tourist", 5),
            ("KAZ", "private", 4),
            ("TUR", "business", 3),
            ("RUS", "private", 3),
        ),
    ),
}


def mix_total(mix: Mix, nationality: str | None = None) -> float:
    return sum(rate for nat, _, rate in mix if nationality in (None, nat))


def fallback_profile(checkpoint: Checkpoint) -> Profile:
    """A checkpoint added to the reference file later still gets plausible traffic."""
    neighbour = checkpoint.country_b or "RUS"
    home = checkpoint.country_a
    return Profile(
        entry=((neighbour, "private", 12), (neighbour, "labour", 8), (home, "private", 10)),
        exit=((neighbour, "private", 10), (home, "private", 12), (home, "business", 5)),
    )
