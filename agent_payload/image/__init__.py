"""Images: references, registry client, content store, layer unpacking and snapshots."""
