"""After training: merge a LoRA adapter into its base (merge), build llama.cpp once (llama_cpp),
convert to GGUF + quantise + write an Ollama Modelfile (gguf, modelfile). doc/serving.md shows the chain.
"""
