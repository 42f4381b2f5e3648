"""Quality cues measured on a pair's views: hand-crafted CV features, pyiqa scores, aligned pair cues."""
