"""Program generators: ways to turn a task's labelled examples into program artifacts."""
