"""Words and short forms the page uses for codes: countries, flags, stages, feedstock, hashes."""

from __future__ import annotations

from datetime import UTC, datetime

# ISO 3166-1 alpha-2 names of the countries a battery supply chain usually runs through; any
# other code is shown as it is.
COUNTRIES = {
    "AR": "Argentina",
    "AU": "Australia",
    "BE": "Belgium",
    "BO": "Bolivia",
    "BR": "Brazil",
    "CA": "Canada",
    "CD": "DR Congo",
    "CH": "Switzerland",
    "CL": "Chile",
    "CN": "China",
    "CU": "Cuba",
    "CZ": "Czechia",
    "DE": "Germany",
    "ES": "Spain",
    "FI": "Finland",
    "FR": "France",
    "GA": "Gabon",
    "GB": "United Kingdom",
    "HU": "Hungary",
    "ID": "Indonesia",
    "IN": "India",
    "IT": "Italy",
    "JP": "Japan",
    "KR": "South Korea",
    "MA": "Morocco",
    "MG": "Madagascar",
    "MX": "Mexico",
    "MZ": "Mozambique",
    "NC": "New Caledonia",
    "NL": "Netherlands",
    "NO": "Norway",
    "PH": "Philippines",
    "PL": "Poland",
    "PT": "Portugal",
    "RU": "Russia",
    "SE": "Sweden",
    "TZ": "Tanzania",
    "US": "United States",
    "ZA": "South Africa",
    "ZM": "Zambia",
    "ZW": "Zimbabwe",
}

FLAGS = {
    "high-risk-origin": ("High-risk origin", "material mined in a country on the high-risk list"),
    "certification-missing": (
        "Certification missing",
        "a participant had no certification when it signed an event",
    ),
    "certification-expired": (
        "Certification expired",
        "a participant's certification had expired when it signed an event",
    ),
    "signer-not-accredited": (
        "Signer not accredited",
        "an event signed by an account without the role at that time",
    ),
    "corrected-event": ("Corrected event", "an event in the chain was declared erroneous"),
    "in-transit": ("Custody not accepted", "a lot was shipped and never received"),
}

STAGES = {
    "extraction": "Extraction",
    "recycling": "Recycling",
    "processing": "Processing",
    "cell manufacturing": "Cell manufacturing",
}

FEEDSTOCK = {0: "mined", 1: "recycled, pre-consumer", 2: "recycled, post-consumer"}


def country(code: str) -> str:
    name = COUNTRIES.get(code)
    return f"{name} ({code})" if name else code


def flag_title(code: str) -> str:
    return FLAGS.get(code, (code, ""))[0]


def flag_meaning(code: str) -> str:
    return FLAGS.get(code, ("", "see the report"))[1]


def stage(name: str) -> str:
    return STAGES.get(name, name)


def short_hash(value: str, keep: int = 4) -> str:
    """``0x6ffa…a765``: enough to tell hashes apart on screen; the full one is in the tables."""
    if value.startswith("0x") and len(value) > 2 + 2 * keep + 1:
        return f"{value[: 2 + keep]}…{value[-keep:]}"
    return value


def short_label(label: str, limit: int = 26) -> str:
    """A lot or passport label that fits a box: hex ids shortened, long text cut."""
    if label.startswith("0x") and len(label) == 66:
        return short_hash(label, 6)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def mass(grams: float) -> str:
    """A mass for a drawing, to four significant digits in t, kg or g ("14,519 t", "954.5 t",
    "23.69 t", "45 kg"); the tables and the JSON report give the exact grams."""
    for unit, size in (("t", 1_000_000), ("kg", 1_000), ("g", 1)):
        if abs(grams) >= size or unit == "g":
            value = grams / size
            digits = len(str(int(abs(value)))) if abs(value) >= 1 else 1
            text = f"{value:,.{max(0, 4 - digits)}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def percent(share: float) -> str:
    """A share of 1 for a chart or a graph label, to one decimal ("< 0.1 %" for tiny ones)."""
    if 0 < share < 0.0005:
        return "< 0.1 %"
    return f"{share * 100:.1f} %"


def utc(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def day(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%d %b %Y")
