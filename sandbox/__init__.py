"""Emulators (Google OAuth + Gmail) on loopback: the other side of the wire; imports nothing of ours."""

from sandbox.google_state import GoogleState
from sandbox.server import Sandbox, main
from sandbox.world import MailMessage, Person, World, generate_world

__all__ = ["GoogleState", "MailMessage", "Person", "Sandbox", "World", "generate_world", "main"]
