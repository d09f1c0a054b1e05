"""The LangChain and LlamaIndex integrations with the real frameworks (langchain-core and
llama-index-core from PyPI: the `test` extra installs them), sync and async; and their import
without the frameworks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

import kompress
import kompress.ctxprune
from conftest import ROOT, fixture_texts, model_dir
from kompress.llmlingua import PromptCompressor

LL = "llmlingua-2-bert-base-multilingual-cased-tiny"
LL_TEXTS = json.loads((ROOT / "tests" / "fixtures" / "llmlingua2" / "texts.json").read_text())
QUERY = "What did the team spend on cloud services?"
KEYS = {"kompress_method", "kompress_original_tokens", "kompress_compressed_tokens"}


def texts():
    return [p.read_text() for p in fixture_texts()[:4]] + [LL_TEXTS["english"]]


@pytest.fixture(scope="module")
def runner():
    return kompress.KompressRunner(model=model_dir("v5"), device="cpu")


@pytest.fixture(scope="module")
def lingua():
    return PromptCompressor(model_name=model_dir(LL), device_map="cpu", use_llmlingua2=True)


# -- LangChain --------------------------------------------------------------------------------------

lc_documents = pytest.importorskip("langchain_core.documents")
from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from kompress.integrations.langchain import KompressDocumentCompressor  # noqa: E402


class CompressionRetriever(BaseRetriever):
    """langchain's ContextualCompressionRetriever (langchain / langchain-classic, not in langchain-core),
    as it is: retrieve, then compress_documents / acompress_documents with the query."""

    base_compressor: lc_documents.BaseDocumentCompressor
    base_retriever: BaseRetriever

    def _get_relevant_documents(self, query, *, run_manager: CallbackManagerForRetrieverRun):
        docs = self.base_retriever.invoke(query)
        return list(self.base_compressor.compress_documents(docs, query))

    async def _aget_relevant_documents(self, query, *, run_manager):
        docs = await self.base_retriever.ainvoke(query)
        return list(await self.base_compressor.acompress_documents(docs, query))


def store_retriever(k=3):
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents([Document(page_content=t, metadata={"source": f"doc{i}"}, id=f"id{i}") for i, t in enumerate(texts())])
    return store.as_retriever(search_kwargs={"k": k})


def test_langchain_kompress_in_a_retriever_pipeline(runner):
    compressor = KompressDocumentCompressor(model=model_dir("v5"), ratio=0.5, device="cpu")
    retriever = CompressionRetriever(base_compressor=compressor, base_retriever=store_retriever())
    plain = store_retriever().invoke(QUERY)
    got = retriever.invoke(QUERY)
    assert [d.id for d in got] == [d.id for d in plain] and len(got) == 3
    for before, after in zip(plain, got):
        want = runner.compress(before.page_content, ratio=0.5)
        assert after.page_content == want.compressed
        assert after.metadata == {
            "source": before.metadata["source"],
            "kompress_method": "kompress",
            "kompress_original_tokens": want.original_tokens,
            "kompress_compressed_tokens": want.compressed_tokens,
        }
    assert asyncio.run(retriever.ainvoke(QUERY)) == got


def test_langchain_llmlingua2_and_llmlinguacompressor_arguments(lingua):
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(texts())]
    # LLMLinguaCompressor's names: model_name selects LLMLingua-2; target_token is per document here.
    compressor = KompressDocumentCompressor(
        model_name=model_dir(LL), device_map="cpu", target_token=30, model_config={"torch_dtype": "float32"}
    )
    got = compressor.compress_documents(docs, QUERY)
    for doc, out in zip(docs, got):
        want = lingua.compress_prompt_llmlingua2(doc.page_content, target_token=30)
        assert out.page_content == want["compressed_prompt"]
        assert out.metadata["kompress_method"] == "llmlingua2"
        assert out.metadata["kompress_original_tokens"] == want["origin_tokens"]
        assert out.metadata["kompress_compressed_tokens"] == want["compressed_tokens"]
        assert out.metadata["n"] == doc.metadata["n"]
    assert docs[0].metadata == {"n": 0}, "the input documents are left as they were"
    options = KompressDocumentCompressor(
        method="llmlingua2", model=model_dir(LL), device="cpu", ratio=0.4, compress_kwargs={"force_tokens": ["\n"]}
    )
    want = lingua.compress_prompt_llmlingua2(docs[1].page_content, rate=0.4, force_tokens=["\n"])
    assert options.compress_documents(docs[1:2], QUERY)[0].page_content == want["compressed_prompt"]
    assert asyncio.run(options.acompress_documents(docs[1:2], QUERY))[0].page_content == want["compressed_prompt"]


def test_langchain_query_aware_and_errors():
    text = LL_TEXTS["long"]
    compressor = KompressDocumentCompressor(query_aware=True, ratio=0.3)
    out = compressor.compress_documents([Document(page_content=text)], "What does the license grant?")[0]
    want = kompress.compress_context(text, "What does the license grant?", 0.3)
    assert out.page_content == want.compressed_text and out.metadata["kompress_method"] == "supercompress"
    with pytest.raises(kompress.InvalidOptionError, match="method: 'bert'"):
        KompressDocumentCompressor(method="bert")
    ctx = KompressDocumentCompressor(method="ctxprune", model=model_dir("ctxprune-tiny"), device="cpu", ratio=0.4)
    out = ctx.compress_documents([Document(page_content=text)], QUERY)[0]
    want = kompress.ctxprune.Compressor(model_dir("ctxprune-tiny")).compress(text, rate=0.4)
    assert out.page_content == want["text"] and out.metadata["kompress_compressed_tokens"] == want["kept"]
    with pytest.raises(Exception, match="instruction"):  # LLMLingua-1's arguments are not taken
        KompressDocumentCompressor(model=model_dir("v5"), instruction="Answer")


# -- LlamaIndex -------------------------------------------------------------------------------------

pytest.importorskip("llama_index.core")
from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.response_synthesizers.no_text import NoText  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402

from kompress.integrations.llama_index import KompressNodePostprocessor  # noqa: E402


def query_engine(postprocessor):
    nodes = [TextNode(text=t, id_=f"n{i}", metadata={"source": f"doc{i}"}) for i, t in enumerate(texts())]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    # No LLM call: the synthesizer returns no text, the source nodes are what the LLM would see.
    synthesizer = NoText(llm=MockLLM())
    return RetrieverQueryEngine(
        index.as_retriever(similarity_top_k=3), response_synthesizer=synthesizer, node_postprocessors=[postprocessor]
    )


def test_llama_index_query_with_the_postprocessor(runner):
    engine = query_engine(KompressNodePostprocessor(model=model_dir("v5"), ratio=0.5, device="cpu"))
    response = engine.query(QUERY)
    assert len(response.source_nodes) == 3
    originals = {f"n{i}": t for i, t in enumerate(texts())}
    for n in response.source_nodes:
        want = runner.compress(originals[n.node.node_id], ratio=0.5)
        assert n.node.get_content() == want.compressed
        assert n.node.metadata["kompress_original_tokens"] == want.original_tokens
        assert n.node.metadata["source"].startswith("doc")
        # The counts stay out of what the LLM and the embedding model read.
        assert "kompress" not in n.node.get_metadata_str(MetadataMode.LLM)
        assert "kompress" not in n.node.get_metadata_str(MetadataMode.EMBED)
        assert n.score is not None
    asynced = asyncio.run(engine.aquery(QUERY))
    assert [n.node.get_content() for n in asynced.source_nodes] == [n.node.get_content() for n in response.source_nodes]


def test_llama_index_query_aware_and_llmlingua2(lingua):
    text = LL_TEXTS["long"]
    nodes = [NodeWithScore(node=TextNode(text=text, metadata={"a": 1}), score=0.7)]
    query = "What does the license grant?"
    aware = KompressNodePostprocessor(query_aware=True, ratio=0.3)
    out = aware.postprocess_nodes(nodes, query_str=query)
    assert out[0].node.get_content() == kompress.compress_context(text, query, 0.3).compressed_text
    assert out[0].score == 0.7 and out[0].node.metadata["a"] == 1
    assert nodes[0].node.get_content() == text, "the input nodes are left as they were"
    again = asyncio.run(aware.apostprocess_nodes(nodes, query_bundle=QueryBundle(query)))
    assert again[0].node.get_content() == out[0].node.get_content()
    with pytest.raises(kompress.InvalidInputError, match="query_aware=True needs the query"):
        aware.postprocess_nodes(nodes)
    ll = KompressNodePostprocessor(method="llmlingua2", model=model_dir(LL), device="cpu", ratio=0.4)
    assert ll.postprocess_nodes(nodes)[0].node.get_content() == lingua.compress_prompt_llmlingua2(text, rate=0.4)["compressed_prompt"]


# -- without the frameworks -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "module,cls,blocked,extra",
    [
        ("kompress.integrations.langchain", "KompressDocumentCompressor", "langchain_core", "langchain"),
        ("kompress.integrations.llama_index", "KompressNodePostprocessor", "llama_index", "llamaindex"),
    ],
)
def test_importable_without_the_framework(module, cls, blocked, extra):
    """In a fresh interpreter where the framework cannot be imported: the module and the class import,
    and using the class says what to install."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{blocked!r}] = None  # `import {blocked}` raises ImportError
        import kompress, kompress.integrations
        from {module} import {cls}
        try:
            {cls}(ratio=0.5)
        except ImportError as e:
            print(e)
        else:
            print("no error")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"pip install 'kompress-rs[{extra}]'" in proc.stdout, proc.stdout
