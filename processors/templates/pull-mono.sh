docker pull "$VLLM_IMAGE"
