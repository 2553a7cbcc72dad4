//! `inferplane keys ...` and `inferplane usage export`: API keys and usage from scripts.

use std::io::Write;

use chrono::Utc;
use futures::StreamExt;
use inferplane_api::routes::keys::generate_key;
use inferplane_api::routes::usage::{UsageQuery, export_stream};
use inferplane_domain::api_key::{ApiKey, ApiKeyCommand, KeyLimits};
use inferplane_domain::{Actor, EventMetadata};
use inferplane_store::{CommandContext, EventStore};
use uuid::Uuid;

use crate::ConfigError;
use crate::cli::{KeysCommand, UsageCommand};
use crate::database::Database;

pub async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => {
            let db = Database::open(&args.db).await?;
            db.migrate().await?;
            let store = EventStore::new(db.pool.clone());
            let id = Uuid::now_v7();
            let (key, secret) = generate_key();
            let prefix = secret.prefix.clone();
            let models = (!args.models.is_empty()).then_some(args.models);
            let command = ApiKeyCommand::Create {
                name: args.name,
                secret,
                limits: KeyLimits {
                    models,
                    rpm_limit: args.rpm_limit,
                    tpm_limit: args.tpm_limit,
                    budget_tokens: args.budget_tokens,
                    expires_at: args.expires_at,
                },
                now: Utc::now(),
            };
            let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("cli")));
            store
                .execute::<ApiKey>(&id.to_string(), command, &(), &ctx)
                .await
                .map_err(|e| ConfigError(format!("the key was refused: {e}")))?;
            eprintln!("created API key {id} ({prefix}); it is shown once, below:");
            let mut out = std::io::stdout().lock();
            writeln!(out, "{key}")?;
            drop(out);
            db.close(true).await
        }
        KeysCommand::Revoke(args) => {
            let db = Database::open(&args.db).await?;
            let store = EventStore::new(db.pool.clone());
            let ctx = CommandContext::new(EventMetadata::new_command(Actor::system("cli")));
            store
                .execute::<ApiKey>(
                    &args.id.to_string(),
                    ApiKeyCommand::Revoke {
                        reason: args.reason,
                    },
                    &(),
                    &ctx,
                )
                .await
                .map_err(|e| ConfigError(format!("cannot revoke {}: {e}", args.id)))?;
            eprintln!("revoked API key {}", args.id);
            db.close(true).await
        }
    }
}

pub async fn usage(command: UsageCommand) -> anyhow::Result<()> {
    match command {
        UsageCommand::Export(args) => {
            let db = Database::open(&args.db).await?;
            let query = UsageQuery {
                group_by: args.group_by,
                bucket: Some(args.bucket),
                from: args.from,
                to: args.to,
                format: Some(args.format),
            };
            let (mut stream, _) = export_stream(db.pool.clone(), query).map_err(|e| {
                let fields: Vec<String> = e
                    .errors
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect();
                ConfigError(format!("{} ({})", e.title, fields.join("; ")))
            })?;
            let mut out: Box<dyn Write> = match &args.output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut bytes = 0usize;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                bytes += chunk.len();
                out.write_all(&chunk)?;
            }
            out.flush()?;
            drop(out);
            if let Some(path) = &args.output {
                eprintln!("wrote {bytes} bytes to {}", path.display());
            }
            db.close(true).await
        }
    }
}
