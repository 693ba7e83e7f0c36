"""The sharing domain: invitations sent, opened, clicked and converted, and the k-factor report."""
