"""Reading numbers from students' replies and judging the replies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tutorlane.domain.answers import judge, read_numbers
from tutorlane.domain.course import Answer, ChoiceAnswer, NumberAnswer, PhraseAnswer


def numbers(*values: str) -> list[Decimal]:
    return [Decimal(value) for value in values]


# read_numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", ["5"]),
        (" 5 ", ["5"]),
        ("5.0", ["5"]),
        ("05", ["5"]),
        ("007", ["7"]),
        ("0", ["0"]),
        ("-3", ["-3"]),
        ("+3", ["3"]),
        ("−3", ["-3"]),  # Unicode minus sign
        ("-0", ["0"]),
        ("3.75", ["3.75"]),
        (".5", ["0.5"]),
        ("-.5", ["-0.5"]),
        ("x = -3", ["-3"]),
        ("(-5)", ["-5"]),
        ("5.", ["5"]),
    ],
)
def test_digits_read_as_numbers(text: str, expected: list[str]) -> None:
    assert read_numbers(text) == numbers(*expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000", "1000"),
        ("4,500", "4500"),
        ("1,000,000", "1000000"),
        ("1,00,000", "100000"),
        ("12,34,567", "1234567"),
        ("1,23,45,678", "12345678"),
        ("1,000.50", "1000.50"),
        ("-1,000", "-1000"),
        ("१,००,०००", "100000"),
    ],
)
def test_western_and_indian_grouping_read_as_one_number(
    text: str, expected: str
) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/2", "0.5"),
        ("1 / 2", "0.5"),
        ("3/4", "0.75"),
        ("-1/2", "-0.5"),
        ("6/3", "2"),
        ("½", "0.5"),
        ("¾", "0.75"),
        ("1⁄2", "0.5"),  # fraction slash
        ("2 1/2", "2.5"),
        ("1½", "1.5"),
        ("-2 1/2", "-2.5"),
        ("१/२", "0.5"),
    ],
)
def test_fractions_read_as_their_value(text: str, expected: str) -> None:
    assert read_numbers(text) == numbers(expected)


def test_a_third_is_read_to_many_places() -> None:
    (third,) = read_numbers("1/3")
    assert abs(third - Decimal(1) / Decimal(3)) < Decimal("1e-20")


def test_a_fraction_over_zero_is_not_a_number() -> None:
    assert read_numbers("1/0") == []


def test_an_improper_fraction_after_a_number_is_not_a_mixed_number() -> None:
    assert read_numbers("5 9/4") == numbers("5", "2.25")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("३", "3"),
        ("१५", "15"),
        ("१०५", "105"),
        ("०", "0"),
        ("-३", "-3"),
        ("३.५", "3.5"),
        ("उत्तर १५ है", "15"),
    ],
)
def test_devanagari_digits_read_as_numbers(text: str, expected: str) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("১৫", "15"),  # Bengali
        ("૧૫", "15"),  # Gujarati
        ("੧੫", "15"),  # Gurmukhi
        ("୧୫", "15"),  # Odia
        ("௧௫", "15"),  # Tamil
        ("౧౫", "15"),  # Telugu
        ("೧೫", "15"),  # Kannada
        ("൧൫", "15"),  # Malayalam
        ("١٥", "15"),  # Arabic-Indic
        ("۱۵", "15"),  # Extended Arabic-Indic (Urdu)
        ("１５", "15"),  # fullwidth
        ("٣٫٥", "3.5"),  # Arabic decimal separator
        ("1५", "15"),  # mixed scripts in one number
    ],
)
def test_digits_of_any_script_read_as_numbers(text: str, expected: str) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zero", "0"),
        ("one", "1"),
        ("five", "5"),
        ("Five", "5"),
        ("FIVE", "5"),
        ("ten", "10"),
        ("fifteen", "15"),
        ("nineteen", "19"),
        ("twenty", "20"),
        ("twenty one", "21"),
        ("twenty-one", "21"),
        ("ninety-nine", "99"),
        ("fourty two", "42"),
        ("a hundred", "100"),
        ("hundred", "100"),
        ("one hundred and five", "105"),
        ("one hundred five", "105"),
        ("three hundred and forty-two", "342"),
        ("nineteen hundred", "1900"),
        ("a thousand", "1000"),
        ("two thousand and twenty four", "2024"),
        ("nine thousand nine hundred and ninety nine", "9999"),
        ("one lakh twenty thousand", "120000"),
        ("two crore", "20000000"),
        ("half", "0.5"),
        ("a half", "0.5"),
        ("one half", "0.5"),
        ("one and a half", "1.5"),
        ("two and half", "2.5"),
        ("the answer is fifteen.", "15"),
    ],
)
def test_english_number_words_read_as_numbers(text: str, expected: str) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("शून्य", "0"),
        ("एक", "1"),
        ("दो", "2"),
        ("तीन", "3"),
        ("चार", "4"),
        ("पाँच", "5"),
        ("पांच", "5"),
        ("छह", "6"),
        ("छः", "6"),
        ("छ:", "6"),
        ("सात", "7"),
        ("आठ", "8"),
        ("नौ", "9"),
        ("दस", "10"),
        ("ग्यारह", "11"),
        ("बारह", "12"),
        ("पंद्रह", "15"),
        ("पन्द्रह", "15"),
        ("बीस", "20"),
        ("पच्चीस", "25"),
        ("अड़तीस", "38"),
        ("अडतीस", "38"),  # without the nukta
        ("उनचास", "49"),
        ("पचास", "50"),
        ("छप्पन", "56"),
        ("चौंसठ", "64"),
        ("चौसठ", "64"),
        ("पचहत्तर", "75"),
        ("अस्सी", "80"),
        ("नवासी", "89"),
        ("नब्बे", "90"),
        ("निन्यानबे", "99"),
        ("निन्यानवे", "99"),
        ("सौ", "100"),
        ("एक सौ", "100"),
        ("एक सौ पाँच", "105"),
        ("दो हज़ार", "2000"),
        ("दो हजार पच्चीस", "2025"),
        ("पाँच लाख", "500000"),
        ("आधा", "0.5"),
        ("डेढ़", "1.5"),
        ("ढाई", "2.5"),
        ("डेढ़ सौ", "150"),
        ("उत्तर पंद्रह है।", "15"),
    ],
)
def test_hindi_number_words_read_as_numbers(text: str, expected: str) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shunya", "0"),
        ("ek", "1"),
        ("do", "2"),
        ("teen", "3"),
        ("char", "4"),
        ("chaar", "4"),
        ("paanch", "5"),
        ("panch", "5"),
        ("chhe", "6"),
        ("che", "6"),
        ("saat", "7"),
        ("aath", "8"),
        ("nau", "9"),
        ("das", "10"),
        ("Paanch hai", "5"),
        ("do sau", "200"),
        ("ek hazaar", "1000"),
    ],
)
def test_romanised_hindi_number_words_read_as_numbers(text: str, expected: str) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how do I get 5", "5"),
        ("5 chhe", "5"),  # Gujarati: "it is 5"
        ("do", "2"),
    ],
)
def test_words_that_are_also_other_words_count_only_alone(
    text: str, expected: str
) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer is 5", "5"),
        ("5 apples", "5"),
        ("it's 15!", "15"),
        ("₹20", "20"),
        ("Rs 20", "20"),
        ("Rs.20", "20"),
        ("Rs.20.50", "20.50"),
        ("20rs", "20"),
        ("20 rupees", "20"),
        ("20/-", "20"),
        ("5kg", "5"),
        ("5 cm²", "5"),
        ("3rd", "3"),
        ("50%", "50"),
        ("x=7", "7"),
        ("5️⃣", "5"),
        ("2 lakh", "200000"),
        ("₹1,00,000", "100000"),
        ("2 and a half", "2.5"),
        ("class-5", "5"),
    ],
)
def test_units_and_currency_around_a_number_are_ignored(
    text: str, expected: str
) -> None:
    assert read_numbers(text) == numbers(expected)


@pytest.mark.parametrize(
    "text", ["5, I said 5", "5 5 5", "5 or 5.0", "05 = 5", "five, 5", "पाँच 5 ५"]
)
def test_a_repeated_number_is_read_once(text: str) -> None:
    assert read_numbers(text) == numbers("5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4 or 5", ["4", "5"]),
        ("4-5", ["4", "5"]),
        ("4–5", ["4", "5"]),
        ("1,2", ["1", "2"]),
        ("4, 500", ["4", "500"]),
        ("10,20,30", ["10", "20", "30"]),
        ("2,5", ["2", "5"]),  # no decimal commas
        ("7+8=15", ["7", "8", "15"]),
        ("5-3", ["5", "3"]),
        ("four five", ["4", "5"]),
        ("twenty, one", ["20", "1"]),
        ("five and six", ["5", "6"]),
        ("zero five", ["0", "5"]),
        ("बीस एक", ["20", "1"]),
        ("1.5.3", ["1.5", "3"]),
        ("5 fifteen", ["5", "15"]),
        ("fifteen or 15 or 5", ["15", "5"]),
    ],
)
def test_several_numbers_read_in_the_order_typed(
    text: str, expected: list[str]
) -> None:
    assert read_numbers(text) == numbers(*expected)


@pytest.mark.parametrize(
    "text",
    ["", " ", "hello", "I don't know", "a", "and", "?", "-", ".", "/", "नमस्ते", "😀"],
)
def test_text_without_numbers_reads_nothing(text: str) -> None:
    assert read_numbers(text) == []


def test_numbers_are_decimals() -> None:
    assert all(type(n) is Decimal for n in read_numbers("5 1/2 fifteen १५ 1,000"))


# judge: numbers ---------------------------------------------------------------------

FIFTEEN = NumberAnswer(Decimal(15))


@pytest.mark.parametrize(
    "text",
    [
        "15",
        "15.0",
        "015",
        "१५",
        "fifteen",
        "Fifteen!",
        "पंद्रह",
        "answer is 15",
        "The answer is 15.",
        "15 apples",
        "₹15",
        "15rs",
        "15, I said 15",
        "15 or 15.0",
        "how do I know? 15",
    ],
)
def test_a_right_number_judges_right(text: str) -> None:
    assert judge(FIFTEEN, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "14",
        "-15",
        "1.5",
        "150",
        "1,5",
        "14 or 15",
        "15 or 16",
        "15 = 16",
        "fifty",
        "no idea",
        "1/0",
        "15/0",
    ],
)
def test_a_wrong_or_hedged_number_judges_wrong(text: str) -> None:
    assert not judge(FIFTEEN, text)


@pytest.mark.parametrize(
    ("text", "right"),
    [
        ("0.5", True),
        ("1/2", True),
        ("½", True),
        ("half", True),
        ("0.505", True),
        ("0.49", True),
        ("0.48", False),
        ("0.52", False),
        ("0.5 or 0.51", True),  # every number is within the tolerance
        ("0.5 or 0.6", False),
    ],
)
def test_a_number_within_tolerance_judges_right(text: str, right: bool) -> None:
    answer = NumberAnswer(Decimal("0.5"), Decimal("0.01"))
    assert judge(answer, text) is right


def test_a_number_answer_that_is_not_finite_judges_wrong_rather_than_raising() -> None:
    assert not judge(NumberAnswer(Decimal("NaN")), "5")
    assert not judge(NumberAnswer(Decimal(5), Decimal("NaN")), "5")


@pytest.mark.parametrize(
    ("value", "text", "right"),
    [
        ("1E+3", "1000", True),
        ("1E+3", "one thousand", True),
        ("1e999999999", "5", False),
        ("1e-999999999", "0", False),
        ("-1e999999999", "-5", False),
    ],
)
def test_number_answers_of_any_finite_size_are_judged(
    value: str, text: str, right: bool
) -> None:
    assert judge(NumberAnswer(Decimal(value)), text) is right


# judge: phrases ---------------------------------------------------------------------

TRIANGLE = PhraseAnswer(("triangle", "त्रिभुज"))


@pytest.mark.parametrize(
    "text",
    [
        "triangle",
        "Triangle",
        "TRIANGLE!",
        "  triangle  ",
        "it is a triangle",
        "A triangle.",
        "right triangle",
        "triangle, not square",
        "not square but triangle",
        "त्रिभुज",
        "त्रिभुज।",
        "यह त्रिभुज है",
        "त्रिभुज है ना?",
    ],
)
def test_a_right_phrase_judges_right(text: str) -> None:
    assert judge(TRIANGLE, text)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "square", "triangles", "tri angle", "triangular", "वर्ग", "t"],
)
def test_a_wrong_phrase_judges_wrong(text: str) -> None:
    assert not judge(TRIANGLE, text)


@pytest.mark.parametrize(
    "text",
    [
        "not a triangle",
        "NOT TRIANGLE",
        "it is not a triangle",
        "it isn't a triangle",
        "it isn’t a triangle",
        "that is not the triangle",
        "triangle? no, not a triangle",
        "त्रिभुज नहीं है",
        "यह त्रिभुज है नहीं",
        "triangle nahi hai",
    ],
)
def test_a_negated_phrase_judges_wrong(text: str) -> None:
    assert not judge(TRIANGLE, text)


@pytest.mark.parametrize(
    ("text", "right"),
    [
        ("right angle", True),
        ("It's a Right-Angle.", True),
        ("right  angle", True),
        ("right", False),
        ("angle", False),
        ("not a right angle", False),
    ],
)
def test_a_phrase_of_several_words_matches_as_whole_words(
    text: str, right: bool
) -> None:
    assert judge(PhraseAnswer(("right angle",)), text) is right


def test_phrases_compare_in_unicode_normal_form() -> None:
    assert judge(PhraseAnswer(("café",)), "CAFE\u0301")  # decomposed é
    assert judge(PhraseAnswer(("Straße",)), "strasse")  # casefold


def test_a_phrase_of_only_punctuation_never_matches() -> None:
    assert not judge(PhraseAnswer(("?!",)), "?!")
    assert not judge(PhraseAnswer(("?!",)), "anything")


# judge: choices ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "text"),
    [
        ("15", "15"),
        ("15", " 15 "),
        ("15", "fifteen"),
        ("15", "१५"),
        ("15", "15.0"),
        ("15", "15 cm"),
        ("1/2", "1/2"),
        ("1/2", "0.5"),
        ("1/2", "half"),
        ("₹20", "20"),
        ("Yes", "yes"),
        ("Yes", "Yes!"),
        ("Option A", "option a"),
        ("2 apples", "2 Apples"),
        ("2 apples", "2apples"),
        ("2 apples", "2"),
        ("1000 ml", "1000"),
        ("1000 ml", "1000ml"),
        ("Square / वर्ग", "square"),
        ("Square / वर्ग", "वर्ग"),
        ("Square / वर्ग", "Square / वर्ग"),
        ("kg / किग्रा", "KG"),
        ("त्रिभुज", "त्रिभुज।"),
    ],
)
def test_a_right_choice_judges_right(choice: str, text: str) -> None:
    assert judge(ChoiceAnswer(choice), text)


@pytest.mark.parametrize(
    ("choice", "text"),
    [
        ("15", ""),
        ("15", "16"),
        ("15", "14 or 15"),
        ("1/2", "0.25"),
        ("Yes", "no"),
        ("Yes", "yes please"),
        ("A", "B"),
        ("A", "a hundred"),
        ("2 apples", "2 oranges"),
        ("1000 ml", "100"),
        ("Square / वर्ग", "circle"),
        ("Square / वर्ग", "square circle"),
        ("15 or 16", "15"),
        ("?", "?"),
    ],
)
def test_a_wrong_choice_judges_wrong(choice: str, text: str) -> None:
    assert not judge(ChoiceAnswer(choice), text)


# Robustness -------------------------------------------------------------------------

ANSWERS: list[Answer] = [
    FIFTEEN,
    NumberAnswer(Decimal("0.5"), Decimal("0.01")),
    TRIANGLE,
    PhraseAnswer(("a",)),
    ChoiceAnswer("15"),
    ChoiceAnswer("Yes"),
]

ODD_TEXTS = [
    "",
    " \t\n",
    "\x00\x01\x02\x1b[31m",
    "🙂👍🏽👨‍👩‍👧",
    "\u202e51\u202c",  # right-to-left override
    "الجواب ٥",
    "תשובה 5",
    "\ud800",  # lone surrogate
    "\ufeff15",
    "e\u0301\u0301\u0301",
    "9" * 5000,
    "1/" * 2048,
    "-" * 4096,
    "." * 4096,
    "," * 4096,
    "१" * 4096,
    "1 " * 2048,
    "1 1/" * 1024,
    "1," * 2048,
    "a " * 2048,
    "½" * 4096,
    "and a " * 682,
    "one hundred " * 341,
    "not triangle " * 315,
    "x" * 4096,
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_odd_text_never_raises(text: str) -> None:
    read_numbers(text)
    for answer in ANSWERS:
        assert judge(answer, text) in (True, False)


@given(st.text())
def test_judge_never_raises_for_any_text(text: str) -> None:
    for answer in ANSWERS:
        assert judge(answer, text) in (True, False)


@given(st.text(), st.text())
def test_judge_never_raises_for_any_phrase_or_choice(answer: str, text: str) -> None:
    assert judge(PhraseAnswer((answer,)), text) in (True, False)
    assert judge(ChoiceAnswer(answer), text) in (True, False)


# Properties -------------------------------------------------------------------------


@given(st.integers())
def test_any_integer_in_digits_reads_as_itself(n: int) -> None:
    assert read_numbers(str(n)) == [Decimal(n)]


@given(st.integers())
def test_any_integer_in_devanagari_digits_reads_as_itself(n: int) -> None:
    devanagari = str(n).translate(str.maketrans("0123456789", "०१२३४५६७८९"))
    assert read_numbers(devanagari) == [Decimal(n)]


def indian_grouping(n: int) -> str:
    sign, digits = ("-" if n < 0 else ""), str(abs(n))
    head, tail = digits[:-3], digits[-3:]
    pairs = [head[max(i - 2, 0) : i] for i in range(len(head), 0, -2)][::-1]
    return sign + ",".join([*pairs, tail])


@given(st.integers())
def test_any_integer_with_thousands_grouping_reads_as_itself(n: int) -> None:
    assert read_numbers(f"{n:,}") == [Decimal(n)]
    assert read_numbers(indian_grouping(n)) == [Decimal(n)]


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3))
def test_any_decimal_in_digits_reads_as_itself(value: Decimal) -> None:
    assert read_numbers(f"{value:f}") == [value]


letter_words = st.text(
    alphabet=st.characters(categories=["L"]), min_size=1, max_size=8
).filter(lambda word: not read_numbers(word))


@given(
    st.integers(-(10**9), 10**9),
    st.lists(letter_words, max_size=4),
    st.lists(letter_words, max_size=4),
)
def test_a_right_number_among_words_still_judges_right(
    n: int, before: list[str], after: list[str]
) -> None:
    text = " ".join([*before, str(n), *after])
    assert judge(NumberAnswer(Decimal(n)), text)


@given(
    st.integers(-(10**9), 10**9),
    st.integers(-(10**9), 10**9),
    st.sampled_from(["{} {}", "{} or {}", "{}, {}", "{} and {}", "{} ya {}"]),
)
def test_two_different_numbers_never_judge_right(a: int, b: int, form: str) -> None:
    assume(a != b)
    answer = NumberAnswer(Decimal(a))
    assert not judge(answer, form.format(a, b))
    assert not judge(answer, form.format(b, a))


@pytest.mark.parametrize("text", ["7+8=15", "7 + 8 = 15", "= 15", "7+8 = fifteen"])
def test_shown_working_is_judged_on_what_follows_the_last_equals_sign(
    text: str,
) -> None:
    assert judge(NumberAnswer(Decimal(15)), text)


def test_a_wrong_result_after_right_working_is_wrong() -> None:
    assert not judge(NumberAnswer(Decimal(15)), "7+8=16")
