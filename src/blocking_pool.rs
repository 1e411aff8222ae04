//! Blocking work (an HTTP exchange with ureq) on a few threads at a time, under one deadline
//! that counts the wait for a thread too: a server that accepts and never answers costs a
//! request its deadline and nothing more.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;

#[derive(Debug, Error)]
pub enum PoolError {
    #[error("no answer within {0:?}")]
    TooSlow(Duration),
    #[error("the blocking task failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct BlockingPool {
    threads: Arc<Semaphore>,
    deadline: Duration,
}

impl BlockingPool {
    /// At most `at_once` pieces of work at a time, each done within `deadline` or given up.
    pub fn new(at_once: usize, deadline: Duration) -> Self {
        Self {
            threads: Arc::new(Semaphore::new(at_once)),
            deadline,
        }
    }

    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let threads = self.threads.clone();
        let done = async move {
            let permit = threads
                .acquire_owned()
                .await
                .map_err(|e| PoolError::Failed(e.to_string()))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                work()
            })
            .await
            .map_err(|e| PoolError::Failed(e.to_string()))
        };
        tokio::time::timeout(self.deadline, done)
            .await
            .map_err(|_| PoolError::TooSlow(self.deadline))?
    }
}
