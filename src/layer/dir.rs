//! Directory layers (under construction).
