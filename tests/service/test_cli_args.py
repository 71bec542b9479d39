"""Command-line parsing: time options take negative ISO years and negative ms as values."""

import pytest

from service.cli import TIME_OPTIONS, parse_args
from kg.timeparse import text_to_ms


@pytest.mark.parametrize("value", ["-0431-03-15", "-0431", "-12000-01-01T10:30Z", "-0431-03-15T12:00:00+02:00",
                                   "-1546300800000", "2019-01-01"])
@pytest.mark.parametrize("option", ["--at", "--known-at"])
def test_a_time_option_takes_a_value_starting_with_minus(option, value):
    args = parse_args(["cypher", "RETURN 1", option, value, "-n", "ns"])
    assert getattr(args, option.lstrip("-").replace("-", "_")) == value
    assert args.namespace == "ns" and args.query == "RETURN 1"
    text_to_ms(value, option)  # and it is a time the command reads


def test_both_time_options_are_known():
    parse_args(["cypher", "q"])  # builds the parser, which registers them
    assert {"--at", "--known-at"} <= TIME_OPTIONS


def test_a_real_option_after_a_time_option_is_still_an_option():
    with pytest.raises(SystemExit):
        parse_args(["cypher", "q", "--at", "--json"])  # --at has no value: refused as before
