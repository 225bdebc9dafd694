//! BertModel (with pooler) and sentence embeddings as sentence-transformers computes them.

use std::path::Path;

use ember_core::{DType, Device, Error, Result, Tensor};
use ember_nn::{
    Activation, AttentionConfig, Dropout, Embedding, LayerNorm, Linear, LoadOptions, Module,
    MultiHeadAttention, QkvProjection, VarBuilder, VarStore, build_checked,
};
use serde::Deserialize;

use crate::config::{divides, finite, positive, probability};

/// The fields of a BERT `config.json` that Ember uses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BertConfig {
    /// vocabulary size
    pub vocab_size: usize,
    /// width
    pub hidden_size: usize,
    /// layers
    pub num_hidden_layers: usize,
    /// heads
    pub num_attention_heads: usize,
    /// MLP width
    pub intermediate_size: usize,
    /// MLP activation (`gelu`, the erf form)
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// positions
    pub max_position_embeddings: usize,
    /// token types
    #[serde(default = "default_types")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// dropout after the embeddings and on each sublayer's output (training mode)
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// dropout on the attention probabilities (training mode)
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}

struct Layer {
    attn: MultiHeadAttention,
    attn_drop: Dropout,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_drop: Dropout,
    out_norm: LayerNorm,
}

/// BertModel with Hugging Face's names; loads checkpoints with or without the `bert.` prefix.
pub struct Bert {
    /// The parameters.
    pub store: VarStore,
    /// The configuration.
    pub cfg: BertConfig,
    pub(crate) raw_config: serde_json::Value,
    pub(crate) word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_norm: LayerNorm,
    emb_drop: Dropout,
    layers: Vec<Layer>,
    /// `pooler.dense` (absent in the token-classification and masked-LM models, as
    /// transformers builds them with `add_pooling_layer=False`)
    pooler: Option<Linear>,
    act: Activation,
}

impl BertConfig {
    /// Checks that the sizes are positive and consistent (heads divide the width), the
    /// epsilon is finite and the activation known.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|msg| Error::data("BertConfig", msg))
    }

    fn check(&self) -> std::result::Result<(), String> {
        positive(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ])?;
        divides(
            "hidden_size",
            self.hidden_size,
            "num_attention_heads",
            self.num_attention_heads,
        )?;
        finite("layer_norm_eps", self.layer_norm_eps, 0.0)?;
        probability("hidden_dropout_prob", Some(self.hidden_dropout_prob))?;
        probability(
            "attention_probs_dropout_prob",
            Some(self.attention_probs_dropout_prob),
        )?;
        Activation::from_hf(&self.hidden_act).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// How the encoder reads a checkpoint: `bert.`-prefixed or not, the heads' parameters
/// (`cls.*`, `classifier.*`) and the position-id buffer left to others, and the pooler's
/// too when the model has none.
fn body_load_options(pooler: bool) -> LoadOptions {
    let mut ignore = vec![
        "embeddings.position_ids".to_string(),
        "cls.*".into(),
        "classifier.*".into(),
    ];
    if !pooler {
        ignore.push("pooler.*".into());
    }
    LoadOptions {
        strip_prefix: Some("bert.".into()),
        ignore,
        ..Default::default()
    }
}

impl Bert {
    /// Training mode (dropout active), as `model.train()`; the same as `store.train()`.
    pub fn train(&self) {
        self.store.train();
    }

    /// Eval mode (dropout off), as `model.eval()`; the same as `store.eval()`.
    pub fn eval(&self) {
        self.store.eval();
    }

    /// A randomly initialized BERT for `cfg`; the config is validated and the total size
    /// checked against the device's memory before anything is allocated.
    pub fn new(cfg: BertConfig, device: Device, dtype: DType, seed: u64) -> Result<Bert> {
        cfg.validate()?;
        let raw = serde_json::json!({
            "model_type": "bert", "architectures": ["BertModel"],
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
            "intermediate_size": cfg.intermediate_size, "hidden_act": cfg.hidden_act,
            "max_position_embeddings": cfg.max_position_embeddings,
            "type_vocab_size": cfg.type_vocab_size, "layer_norm_eps": cfg.layer_norm_eps,
            "hidden_dropout_prob": cfg.hidden_dropout_prob,
            "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob,
        });
        let store = VarStore::with_seed(device, dtype, seed);
        build_checked(store, |store| Bert::build(&cfg, raw.clone(), store, true))
    }

    /// Creates the parameters in `store` (initialized, planned or read, as the store does),
    /// the pooler when `pooler`.
    pub(crate) fn build(
        cfg: &BertConfig,
        raw_config: serde_json::Value,
        store: VarStore,
        pooler: bool,
    ) -> Result<Bert> {
        let (c, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let vb = VarBuilder::new(&store);
        let hidden_drop = || Dropout::new(vb.clone(), cfg.hidden_dropout_prob);
        let e = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp("encoder.layer").pp(i);
                let a = l.pp("attention");
                let qkv = QkvProjection::Separate {
                    q: Linear::new(a.pp("self.query"), c, c, true)?.into(),
                    k: Linear::new(a.pp("self.key"), c, c, true)?.into(),
                    v: Linear::new(a.pp("self.value"), c, c, true)?.into(),
                };
                let out = Linear::new(a.pp("output.dense"), c, c, true)?.into();
                let h = cfg.num_attention_heads;
                let attn_cfg = AttentionConfig {
                    dim: c,
                    n_heads: h,
                    n_kv_heads: h,
                    head_dim: c / h,
                    qkv_bias: true,
                    o_bias: true,
                    causal: false,
                    rope: None,
                };
                let probs_drop = Dropout::new(vb.clone(), cfg.attention_probs_dropout_prob)?;
                Ok(Layer {
                    attn: MultiHeadAttention::from_parts(l.clone(), qkv, out, attn_cfg)?
                        .with_dropout(probs_drop),
                    attn_drop: hidden_drop()?,
                    attn_norm: LayerNorm::new(a.pp("output.LayerNorm"), c, eps, true)?,
                    inter: Linear::new(l.pp("intermediate.dense"), c, cfg.intermediate_size, true)?,
                    out: Linear::new(l.pp("output.dense"), cfg.intermediate_size, c, true)?,
                    out_drop: hidden_drop()?,
                    out_norm: LayerNorm::new(l.pp("output.LayerNorm"), c, eps, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let word = Embedding::new(e.pp("word_embeddings"), cfg.vocab_size, c)?;
        let position = Embedding::new(e.pp("position_embeddings"), cfg.max_position_embeddings, c)?;
        let token_type = Embedding::new(e.pp("token_type_embeddings"), cfg.type_vocab_size, c)?;
        let emb_norm = LayerNorm::new(e.pp("LayerNorm"), c, eps, true)?;
        let emb_drop = hidden_drop()?;
        let pooler = match pooler {
            true => Some(Linear::new(vb.pp("pooler.dense"), c, c, true)?),
            false => None,
        };
        let act = Activation::from_hf(&cfg.hidden_act)?;
        drop(vb);
        Ok(Bert {
            store,
            cfg: cfg.clone(),
            raw_config,
            word,
            position,
            token_type,
            emb_norm,
            emb_drop,
            layers,
            pooler,
            act,
        })
    }

    /// Loads `dir/config.json` and the weights, strictly (ignoring `embeddings.position_ids`
    /// and the pretraining heads `cls.*`). The config is validated and every parameter
    /// checked against the checkpoint's index before any is allocated; each is then read
    /// straight from the file.
    pub fn from_pretrained(dir: impl AsRef<Path>, device: Device, dtype: DType) -> Result<Bert> {
        Bert::load_body(dir.as_ref(), device, dtype, true)
    }

    /// A BERT from bytes held in memory (a download, as in the browser): `config.json`'s text
    /// and a `model.safetensors` (with or without the `bert.` prefix), checked as
    /// [`Bert::from_pretrained`] checks files.
    pub fn from_bytes(
        config: &[u8],
        weights: Vec<u8>,
        device: Device,
        dtype: DType,
    ) -> Result<Bert> {
        let dir = Path::new("(in memory)");
        if config.len() > 16 << 20 {
            return Err(crate::config_error(
                dir,
                format!("config.json of {} bytes", config.len()),
            ));
        }
        let raw: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| crate::config_error(dir, e.to_string()))?;
        crate::expect_model_type(dir, &raw, "Bert::from_bytes", &["bert"])?;
        let cfg: BertConfig = crate::typed(dir, &raw)?;
        cfg.check().map_err(|msg| crate::config_error(dir, msg))?;
        let opts = body_load_options(true);
        let ckpt = ember_weights::Checkpoint::from_bytes(weights, "model.safetensors")?;
        let source = ember_nn::CheckpointSource::new(ckpt, &opts, "model.safetensors (in memory)");
        let model = ember_nn::build_from(
            Box::new(source),
            device,
            dtype,
            |store| Bert::build(&cfg, raw.clone(), store, true),
            |m| &m.store,
        )?;
        model.store.eval();
        Ok(model)
    }

    /// The encoder of a checkpoint saved with or without a task head (`bert.`-prefixed or
    /// not; `cls.*` and `classifier.*` are the heads' to read), with its pooler when `pooler`
    /// (else a checkpoint's pooler is ignored, as transformers does).
    pub(crate) fn load_body(
        dir: &Path,
        device: Device,
        dtype: DType,
        pooler: bool,
    ) -> Result<Bert> {
        let raw = crate::read_config(dir)?;
        crate::expect_model_type(dir, &raw, "Bert::from_pretrained", &["bert"])?;
        let cfg: BertConfig = crate::typed(dir, &raw)?;
        cfg.check().map_err(|msg| crate::config_error(dir, msg))?;
        let opts = body_load_options(pooler);
        crate::build_from_dir(
            dir,
            &opts,
            device,
            dtype,
            |store| Bert::build(&cfg, raw.clone(), store, pooler),
            |m| &m.store,
        )
    }

    /// Writes `config.json` and `model.safetensors` (HF names) so transformers loads it back.
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::save_dir(dir.as_ref(), &self.raw_config, &self.store)
    }

    /// Last hidden states `(B, T, C)` and the pooler output `(B, C)`. `attention_mask` is
    /// `(B, T)` with 1 for tokens and 0 for padding; `token_types` defaults to zeros.
    pub fn forward(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_types: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let x = self.hidden(ids, attention_mask, token_types)?;
        Ok((x.clone(), self.pool(&x)?))
    }

    /// The pooler output `(B, C)` of hidden states `(B, T, C)`: `tanh(dense(x[:, 0]))`.
    pub(crate) fn pool(&self, x: &Tensor) -> Result<Tensor> {
        let Some(pooler) = &self.pooler else {
            return Err(Error::data(
                "Bert",
                "this encoder has no pooler (a token-classification or masked-LM body)",
            ));
        };
        let first = x.narrow(1, 0, 1)?.squeeze(1)?; // (B, C)
        pooler.forward(&first)?.tanh()
    }

    /// The last hidden states `(B, T, C)` (see [`Bert::forward`]).
    pub fn hidden(
        &self,
        ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_types: Option<&Tensor>,
    ) -> Result<Tensor> {
        if ids.rank() != 2 {
            return Err(Error::shape(
                "Bert",
                &[ids.dims()],
                format!("token ids must be (B, T), got {:?}", ids.dims()),
            ));
        }
        let (b, t) = (ids.dims()[0], ids.dims()[1]);
        let limit = self.cfg.max_position_embeddings;
        if t > limit {
            return Err(Error::shape(
                "Bert",
                &[ids.dims()],
                format!(
                    "{t} tokens are more than the model's {limit} positions: truncate the input"
                ),
            ));
        }
        for (what, given) in [
            ("attention_mask", attention_mask),
            ("token_type_ids", token_types),
        ] {
            if let Some(m) = given
                && m.dims() != [b, t]
            {
                return Err(Error::shape(
                    "Bert",
                    &[m.dims(), ids.dims()],
                    format!(
                        "{what} must be (B, T) = {:?} like the ids, got {:?}",
                        [b, t],
                        m.dims()
                    ),
                ));
            }
        }
        let dev = ids.device();
        let pos = Tensor::arange(0.0, t as f64, 1.0, DType::I64, dev)?;
        let types = match token_types {
            Some(tt) => tt.clone(),
            None => Tensor::zeros(&[b, t], DType::I64, dev)?,
        };
        let x = self
            .word
            .forward(ids)?
            .add(&self.position.forward(&pos)?)?
            .add(&self.token_type.forward(&types)?)?;
        let mut x = self.emb_drop.forward(&self.emb_norm.forward(&x)?)?; // (B, T, C)
        let keep = match attention_mask {
            Some(m) => Some(m.ne_scalar(0.0)?.reshape_to(&[b, 1, 1, t])?),
            None => None,
        };
        for l in &self.layers {
            let y = l.attn.forward_with(&x, keep.as_ref(), None)?; // (B, T, C)
            x = l.attn_norm.forward(&x.add(&l.attn_drop.forward(&y)?)?)?;
            let f = l.out.forward(&self.act.forward(&l.inter.forward(&x)?)?)?;
            x = l.out_norm.forward(&x.add(&l.out_drop.forward(&f)?)?)?;
        }
        Ok(x)
    }

    /// Sentence embeddings as sentence-transformers: mean of the hidden states over the
    /// attention mask, then L2 normalization. `(B, C)`.
    pub fn embed(&self, ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let hidden = self.hidden(ids, Some(attention_mask), None)?;
        let m = attention_mask.to_dtype(hidden.dtype())?.unsqueeze(-1)?; // (B, T, 1)
        let summed = hidden.mul(&m)?.sum(&[1], false)?;
        let pooled = summed.div(&m.sum(&[1], false)?.clamp(Some(1e-9), None)?)?;
        let norm = pooled
            .square()?
            .sum(&[-1], true)?
            .sqrt()?
            .clamp(Some(1e-12), None)?;
        pooled.div(&norm)
    }
}
