"""The tutor's own words in each language, and the commands students type."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from tutorlane.domain.course import Text


class Command(StrEnum):
    """What a student can ask for at any time."""

    START = "start"
    GREETING = "greeting"
    HELP = "help"
    HINT = "hint"
    SKIP = "skip"
    STOP = "stop"
    TOPICS = "topics"
    ENGLISH = "english"
    HINDI = "hindi"


_COMMAND_WORDS: dict[Command, tuple[str, ...]] = {
    Command.START: (
        "start", "restart", "start over", "/start", "begin", "शुरू", "शुरू करो", "फिर से",
    ),
    Command.GREETING: (
        "hi", "hii", "hiii", "hello", "helo", "hey", "namaste", "namaskar",
        "नमस्ते", "नमस्कार", "हेलो", "हाय", "good morning", "good evening",
    ),
    Command.HELP: ("help", "/help", "?", "menu", "मदद", "सहायता"),
    Command.HINT: ("hint", "/hint", "hint please", "clue", "संकेत", "हिंट", "इशारा"),
    Command.SKIP: ("skip", "/skip", "next", "pass", "छोड़ो", "अगला", "आगे"),
    Command.STOP: ("stop", "/stop", "quit", "exit", "bye", "रुको", "बंद", "बंद करो"),
    Command.TOPICS: ("topics", "topic", "/topics", "विषय", "टॉपिक"),
    Command.ENGLISH: ("english", "अंग्रेज़ी", "अंग्रेजी", "इंग्लिश"),
    Command.HINDI: ("hindi", "हिंदी", "हिन्दी"),
}  # fmt: skip

_PUNCTUATION = re.compile(r"[\s!.,;:।॥'\"()\-]+")


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFC", text).casefold()
    return _PUNCTUATION.sub(" ", folded).strip()


_COMMANDS = {
    _normalise(word) or word: command
    for command, words in _COMMAND_WORDS.items()
    for word in words
}


def read_command(text: str) -> Command | None:
    """Return the command a message is, or None when it is not one."""
    if len(text) > 40:
        return None
    stripped = text.strip()
    return _COMMANDS.get(_normalise(stripped) or stripped)


def looks_hindi(text: str) -> bool:
    """Tell whether a message is written in Devanagari."""
    return any("\u0900" <= char <= "\u097f" for char in text)


def _t(en: str, hi: str) -> Text:
    return Text({"en": en, "hi": hi})


WELCOME = _t(
    "Welcome to {title}! Answer each question with a number or a word. "
    "Type hint for a clue, skip to move on, help for all commands.",
    "{title} में स्वागत है! हर सवाल का जवाब एक संख्या या शब्द में दो। "
    "संकेत के लिए hint, आगे बढ़ने के लिए skip, सब कमांड के लिए help लिखो।",
)
WELCOME_BACK = _t("Welcome back! Let's continue.", "फिर से स्वागत है! चलो आगे बढ़ते हैं।")
HELP = _t(
    "Commands: hi (carry on), start (begin again), hint (a clue), skip (next "
    "question), topics (choose a topic, where the course has them), stop (pause), "
    "help (this list), hindi / english (language).",
    "कमांड: नमस्ते (जारी रखो), start या शुरू (फिर से शुरू), hint या संकेत, skip या "
    "छोड़ो (अगला सवाल), topics या विषय (विषय चुनो, जहाँ हों), stop या रुको (रुकें), "
    "मदद (सहायता), hindi / english (भाषा)।",
)
NO_MORE_HINTS = _t(
    "No more hints for this one. Give it your best try!",
    "इस सवाल के लिए और संकेत नहीं हैं। पूरी कोशिश करो!",
)
NEEDS_NUMBER = _t(
    "Please answer with a number. Type hint for a clue, or skip to move on.",
    "कृपया जवाब एक संख्या में दो। संकेत के लिए hint, आगे बढ़ने के लिए skip लिखो।",
)
NEEDS_CHOICE = _t(
    "Please pick one of the choices: tap it or type it. Type hint for a clue.",
    "कृपया कोई एक विकल्प चुनो: उसे दबाओ या लिखो। संकेत के लिए hint लिखो।",
)
ANSWER_WAS = _t("The answer is {answer}.", "सही जवाब {answer} है।")
SKIPPED = _t("Skipped. The answer was {answer}.", "छोड़ दिया। सही जवाब {answer} था।")
FINISHED = _t(
    "You finished the course! You got {correct} of {answered} right. "
    "Send start to play again.",
    "तुमने कोर्स पूरा कर लिया! {answered} में से {correct} सही। फिर से खेलने के लिए start भेजो।",
)
FINISHED_UNANSWERED = _t(
    "You reached the end of the course. Send start to try the questions again.",
    "तुम कोर्स के अंत तक पहुँच गए। सवाल फिर से करने के लिए start भेजो।",
)
STOPPED = _t(
    "Okay, we stopped. Send hi whenever you want to continue.",
    "ठीक है, हम रुक गए। जब चाहो आगे बढ़ने के लिए hi भेजो।",
)
NOT_STARTED = _t(
    "Hello! Send hi to start the maths quiz.",
    "नमस्ते! गणित क्विज़ शुरू करने के लिए hi भेजो।",
)
CANNOT_READ = _t(
    "I can only read typed answers and button taps, not pictures, voice or files.",
    "मैं सिर्फ़ लिखे हुए जवाब और बटन पढ़ सकता हूँ, फ़ोटो, आवाज़ या फ़ाइल नहीं।",
)
PICK_TOPIC = _t(
    "Please pick one of the topics.",
    "कृपया इनमें से कोई एक विषय चुनो।",
)
NO_TOPICS = _t(
    "This course has no list of topics; let's go on.",
    "इस कोर्स में विषयों की सूची नहीं है; चलो आगे बढ़ते हैं।",
)
LANGUAGE_SET = _t("Okay, English it is.", "ठीक है, अब हिंदी में।")
