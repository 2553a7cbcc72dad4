//! The worker side: the agent that runs on each GPU VM, and a mock vLLM engine.
