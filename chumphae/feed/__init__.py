"""The caregivers' live alert feed: a database log whose ids are cursors, fanned out to sockets."""
