"""Presentation: tables, figures (the only matplotlib code), the explorer, the authors' reported
numbers and the book build."""
