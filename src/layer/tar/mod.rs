//! Tar layers read in place (under construction).
