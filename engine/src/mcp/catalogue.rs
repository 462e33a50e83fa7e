//! What one upstream server offers, as the gateway republishes it: tools and prompts renamed
//! `server__name`, resources under their own URIs. Held as JSON ready to serve, so a
//! `tools/list` only filters and concatenates.

use super::scope::SEPARATOR;
use rmcp::{Peer, RoleClient};
use serde_json::Value;

#[derive(Debug, Default, PartialEq)]
pub struct Catalogue {
    pub tools: Vec<Entry>,
    pub prompts: Vec<Entry>,
    /// Resources and resource templates as the server describes them.
    pub resources: Vec<Value>,
    pub resource_templates: Vec<Value>,
}

/// A tool or prompt: the name clients see, the server's own name, and the description with
/// the public name in place.
#[derive(Debug, PartialEq)]
pub struct Entry {
    pub public: String,
    pub upstream: String,
    pub json: Value,
}

impl Catalogue {
    /// Lists tools, and prompts and resources when the server offers them.
    pub async fn fetch(server: &str, peer: &Peer<RoleClient>) -> Result<Catalogue, String> {
        let caps = peer.peer_info().map(|info| info.capabilities.clone());
        let offers = |f: fn(&rmcp::model::ServerCapabilities) -> bool| caps.as_ref().is_some_and(f);
        let mut out = Catalogue::default();
        if offers(|c| c.tools.is_some()) {
            let tools = peer.list_all_tools().await.map_err(|e| e.to_string())?;
            out.tools = tools
                .iter()
                .filter_map(|t| entry(server, &t.name, serde_json::to_value(t).ok()?))
                .collect();
        }
        if offers(|c| c.prompts.is_some()) {
            // Prompts and resources are extras: a server that fails to list them still
            // serves its tools.
            if let Ok(prompts) = peer.list_all_prompts().await {
                out.prompts = prompts
                    .iter()
                    .filter_map(|p| entry(server, &p.name, serde_json::to_value(p).ok()?))
                    .collect();
            }
        }
        if offers(|c| c.resources.is_some()) {
            if let Ok(resources) = peer.list_all_resources().await {
                out.resources = resources
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .collect();
            }
            if let Ok(templates) = peer.list_all_resource_templates().await {
                out.resource_templates = templates
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .collect();
            }
        }
        Ok(out)
    }

    pub fn tool(&self, upstream: &str) -> Option<&Entry> {
        self.tools.iter().find(|t| t.upstream == upstream)
    }

    /// Whether `uri` is one of this server's resources or fits one of its templates (by the
    /// template's fixed prefix, before the first `{`).
    pub fn serves_resource(&self, uri: &str) -> bool {
        self.resources.iter().any(|r| r["uri"] == uri)
            || self.resource_templates.iter().any(|t| {
                t["uriTemplate"]
                    .as_str()
                    .and_then(|tpl| tpl.split('{').next())
                    .is_some_and(|prefix| !prefix.is_empty() && uri.starts_with(prefix))
            })
    }
}

fn entry(server: &str, name: &str, mut json: Value) -> Option<Entry> {
    let public = format!("{server}{SEPARATOR}{name}");
    json["name"] = Value::String(public.clone());
    Some(Entry {
        public,
        upstream: name.to_string(),
        json,
    })
}
