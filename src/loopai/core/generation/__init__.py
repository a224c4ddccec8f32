"""Program generation: one interface (`base.Generator`), three backends (`examples`, the
built-in offline learner; `openai`, any OpenAI-compatible chat endpoint; `http`, the Loopai
generator-service contract), and the jobs that turn a generator's code into an artifact."""
