"""Shift calendars: when each site works (shifts, breaks, holidays, extra shifts)."""
