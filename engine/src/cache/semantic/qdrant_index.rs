//! A Qdrant collection as the semantic index (`index: {kind: qdrant}`, cargo feature
//! `qdrant`), for deployments that already run Qdrant. One collection holds every partition:
//! each point is one stored answer, its id the answer's exact key (as a UUID, so storing the
//! same request again replaces its point), its payload the partition (keyword), the exact key
//! and the expiry `exp` (unix ms). A lookup is a nearest-neighbour query filtered on
//! `partition` and `exp > now`; the collection (cosine distance, the embedder's width) and its
//! payload indexes are created on first use when missing. Every `SWEEP_EVERY`th write deletes
//! expired points, since Qdrant has no TTL of its own.

use super::index::Neighbour;
use super::SemanticError;
use crate::cache::Hash128;
use qdrant_client::qdrant::{
    value::Kind, Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, PointStruct, Query, QueryPointsBuilder,
    Range, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// A lookup waits at most this long: past it, the upstream call is the faster answer.
const DEADLINE: Duration = Duration::from_millis(500);
/// How often (in writes, per process) a write also deletes expired points.
const SWEEP_EVERY: u64 = 256;

#[derive(Clone)]
pub struct QdrantIndex {
    client: Arc<Qdrant>,
    url: Arc<str>,
    collection: Arc<str>,
    dims: u64,
    /// Set once the collection is known to exist; a failure leaves it unset to retry.
    ready: Arc<OnceCell<()>>,
    writes: Arc<AtomicU64>,
}

impl fmt::Debug for QdrantIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantIndex")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .finish()
    }
}

impl QdrantIndex {
    /// Checks the URL; the connection opens on first use, so a Qdrant that is down at start
    /// only turns lookups into misses until it is back.
    pub fn new(
        url: &str,
        collection: &str,
        api_key: Option<&str>,
        dims: usize,
    ) -> Result<QdrantIndex, SemanticError> {
        let shown: Arc<str> = Arc::from(crate::state::redis::redact(url));
        let client = Qdrant::from_url(url)
            .api_key(api_key.map(str::to_owned))
            .timeout(DEADLINE)
            .connect_timeout(DEADLINE)
            .skip_compatibility_check()
            .build()
            .map_err(|e| SemanticError::Setup(format!("index: qdrant at {shown}: {e}")))?;
        Ok(QdrantIndex {
            client: Arc::new(client),
            url: shown,
            collection: Arc::from(collection),
            dims: dims as u64,
            ready: Arc::default(),
            writes: Arc::default(),
        })
    }

    fn failed(&self, what: &str, reason: impl fmt::Display) -> SemanticError {
        SemanticError::Index(format!("qdrant at {}: {what}: {reason}", self.url))
    }

    /// Bounds a call by `DEADLINE`, whatever the client's own timeouts do.
    async fn bounded<T, E: fmt::Display>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, SemanticError> {
        match tokio::time::timeout(DEADLINE, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(what, e)),
            Err(_) => Err(self.failed(what, format!("no reply within {DEADLINE:?}"))),
        }
    }

    /// Whether Qdrant answers its health check now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), SemanticError> {
        self.bounded("health_check", self.client.health_check())
            .await
            .map(drop)
    }

    /// Creates the collection and its payload indexes unless they exist.
    async fn ensure_collection(&self) -> Result<(), SemanticError> {
        self.ready
            .get_or_try_init(|| async {
                let name = self.collection.to_string();
                let exists = self
                    .bounded("collection_exists", self.client.collection_exists(&name))
                    .await?;
                if !exists {
                    let create = CreateCollectionBuilder::new(&name)
                        .vectors_config(VectorParamsBuilder::new(self.dims, Distance::Cosine));
                    self.bounded("create_collection", self.client.create_collection(create))
                        .await?;
                    for (field, kind) in [
                        ("partition", FieldType::Keyword),
                        ("exp", FieldType::Integer),
                    ] {
                        let index = CreateFieldIndexCollectionBuilder::new(&name, field, kind);
                        self.bounded("create_field_index", self.client.create_field_index(index))
                            .await?;
                    }
                }
                Ok(())
            })
            .await
            .copied()
    }

    /// The most similar live entry of `partition`.
    pub async fn nearest(
        &self,
        partition: Hash128,
        vector: &[f32],
        now_ms: u64,
    ) -> Result<Option<Neighbour>, SemanticError> {
        self.ensure_collection().await?;
        let query = QueryPointsBuilder::new(self.collection.to_string())
            .query(Query::new_nearest(vector.to_vec()))
            .filter(live_in(partition, now_ms))
            .limit(1)
            .with_payload(true);
        let found = self.bounded("query", self.client.query(query)).await?;
        let Some(point) = found.result.into_iter().next() else {
            return Ok(None);
        };
        let exact = match point.payload.get("exact").and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(hex)) => Hash128::from_hex(hex),
            _ => None,
        }
        .ok_or_else(|| self.failed("query", "a point without an `exact` key"))?;
        Ok(Some(Neighbour {
            exact,
            similarity: point.score,
        }))
    }

    /// Adds (or replaces) the point for the answer at `exact`, expiring at `expires_ms`.
    pub async fn insert(
        &self,
        partition: Hash128,
        vector: &[f32],
        exact: Hash128,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<(), SemanticError> {
        self.ensure_collection().await?;
        let payload = Payload::from([
            ("partition", partition.to_string().into()),
            ("exact", exact.to_string().into()),
            ("exp", i64::try_from(expires_ms).unwrap_or(i64::MAX).into()),
        ]);
        let point = PointStruct::new(point_id(exact), vector.to_vec(), payload);
        let upsert = UpsertPointsBuilder::new(self.collection.to_string(), vec![point]);
        self.bounded("upsert_points", self.client.upsert_points(upsert))
            .await?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let expired = Filter::must([Condition::range(
                "exp",
                Range {
                    lte: Some(now_ms as f64),
                    ..Range::default()
                },
            )]);
            let delete = DeletePointsBuilder::new(self.collection.to_string()).points(expired);
            self.bounded("delete_points", self.client.delete_points(delete))
                .await?;
        }
        Ok(())
    }
}

/// Points of `partition` that have not expired.
fn live_in(partition: Hash128, now_ms: u64) -> Filter {
    Filter::must([
        Condition::matches("partition", partition.to_string()),
        Condition::range(
            "exp",
            Range {
                gt: Some(now_ms as f64),
                ..Range::default()
            },
        ),
    ])
}

/// The exact key written as a UUID, the id form Qdrant takes besides integers.
fn point_id(exact: Hash128) -> String {
    let hex = exact.to_string();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_uuids_of_the_exact_key() {
        let id = point_id(Hash128([0x0f; 16]));
        assert_eq!(id, "0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f0f");
        assert_eq!(id.replace('-', ""), Hash128([0x0f; 16]).to_string());
    }

    #[test]
    fn a_bad_url_is_a_setup_error_naming_it_without_its_secret() {
        let err = QdrantIndex::new("not a url", "c", None, 384).unwrap_err();
        assert!(matches!(err, SemanticError::Setup(_)), "{err}");
    }
}
