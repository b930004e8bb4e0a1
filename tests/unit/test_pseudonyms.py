"""Pseudonyms: stable, keyed, and one key however many processes start at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from tutorlane.adapters.pseudonyms import Pseudonymiser, load_or_create_key


def test_the_same_phone_gets_the_same_pseudonym_in_any_spelling() -> None:
    pseudonymise = Pseudonymiser(b"k" * 32)

    assert pseudonymise("+919800000001") == pseudonymise("919800000001")
    assert pseudonymise("+919800000001") != pseudonymise("+919800000002")
    assert "9800000001" not in pseudonymise("+919800000001")


def test_another_key_gives_other_pseudonyms() -> None:
    phone = "+919800000001"

    assert Pseudonymiser(b"a" * 32)(phone) != Pseudonymiser(b"b" * 32)(phone)


def test_processes_starting_together_all_get_one_whole_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        for round_number in range(20):
            # NOTE: the function must be importable by name in a spawned process.
            path = tmp_path / f"round-{round_number}" / "pseudonym.key"
            keys = pool.map(load_or_create_key, [path] * 8)

            assert len(set(keys)) == 1
            assert len(keys[0]) == 32
    assert not [p for p in tmp_path.rglob(".*")], "no drafts left behind"
