//! Process managers.
