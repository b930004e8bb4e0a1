"""Course data shared by tests, independent of the shipped content."""

from __future__ import annotations

from typing import Any

TINY_COURSE: dict[str, Any] = {
    "course": "tiny",
    "title": {"en": "Tiny maths", "hi": "छोटा गणित"},
    "start": "add-1",
    "skills": [
        {"id": "addition", "name": {"en": "Addition", "hi": "जोड़"}},
        {"id": "shapes", "name": "Shapes", "requires": ["addition"]},
    ],
    "nodes": [
        {
            "id": "add-1",
            "skill": "addition",
            "question": {"en": "What is 7 + 8?", "hi": "7 + 8 कितना है?"},
            "answer": {"number": 15},
            "hints": [{"en": "Count on from 7."}, {"en": "7 + 3 = 10, then 5 more."}],
            "feedback": {
                "right": {"en": "Correct! 15.", "hi": "सही! 15"},
                "wrong": {"en": "Not quite.", "hi": "सही नहीं।"},
            },
            "attempts": 2,
            "next": {"right": "add-2", "exhausted": "add-2"},
        },
        {
            "id": "add-2",
            "skill": "addition",
            "question": "Pick 2 + 2",
            "buttons": ["3", "4", "5"],
            "answer": {"choice": "4"},
            "attempts": 1,
            "next": {"right": "shape-1"},
        },
        {
            "id": "shape-1",
            "skill": "shapes",
            "question": "A shape with three sides?",
            "answer": {"phrases": ["triangle", "त्रिभुज"]},
            "next": {"right": None},
        },
    ],
}
