"""The paper's experiments and the suites built like them: the declared table of which methods
each compares (:mod:`~oodscope.bench.paper.methods`), the suites' definitions and cells
(:mod:`~oodscope.bench.paper.suites`), their record file, run, statistics and tables."""
