"""tutorlane: the backend of a chat maths tutor on SwiftChat."""
