//! Scaleway: a client for the Instance and Block Storage APIs, and a local simulator.
