"""pgolf auditor: static legality audit of Parameter Golf record folders (imports without torch)."""
