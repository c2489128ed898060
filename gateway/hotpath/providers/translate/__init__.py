"""Translation between wire formats, apart from the adapters that send them.

`anthropic`: OpenAI chat <-> Anthropic messages, both ways (an OpenAI client on an Anthropic
model, and an Anthropic client on an OpenAI-compatible model); `gemini`: OpenAI chat <->
Gemini generateContent; `common`: what they share. Streams translate in the adapters' modules
(`anthropic.AnthropicToChatStream`, `gemini.GeminiToChatStream`, `messages_compat`), reading
these bodies' rules. Usage in every format lives in `providers/usage.py`.
"""
