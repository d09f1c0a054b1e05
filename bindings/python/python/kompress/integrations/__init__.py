"""Framework integrations: each module imports its framework only when used.

- :mod:`kompress.integrations.langchain`: ``KompressDocumentCompressor``, a langchain-core
  ``BaseDocumentCompressor`` (``pip install 'kompress-rs[langchain]'``).
- :mod:`kompress.integrations.llama_index`: ``KompressNodePostprocessor``, a llama-index-core
  ``BaseNodePostprocessor`` (``pip install 'kompress-rs[llamaindex]'``).

Both compress each document's or node's text with one kompress method (``method=``): ``"kompress"``
(the Kompress pipeline, :class:`kompress.KompressRunner`) or ``"llmlingua2"`` (LLMLingua-2,
:class:`kompress.llmlingua.PromptCompressor`), or, with ``query_aware=True``, SuperCompress's
question-aware eviction (:func:`kompress.compress_context`) on the query.
"""
