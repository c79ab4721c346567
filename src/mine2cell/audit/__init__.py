"""Independent verification of a passport's chain against the auditor's own node."""
