//! Why an attempt failed, which decides what happens next.

use serde_json::Value;

/// Why an attempt failed, which decides what happens next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt: a timeout, a flaky network, a busy provider.
    #[error("{0}")]
    Retryable(String),
    /// Worth another attempt, but not before `after`: a provider that said
    /// when it will take requests again.
    #[error("{message}")]
    RetryLater { message: String, after: std::time::Duration },
    /// Will fail the same way every time: a bad payload, a missing account.
    /// The job goes `dead` at once.
    #[error("{0}")]
    Permanent(String),
    /// The handler saw its cancellation token trip and stopped.
    #[error("cancelled")]
    Cancelled,
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> Self {
        JobError::Retryable(message.into())
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        JobError::Permanent(message.into())
    }
}

/// A database that failed an attempt's read or write: worth another attempt
/// (an outage passes; a fenced write that lost its job is not an error).
impl From<longhaul_jobs::StoreError> for JobError {
    fn from(err: longhaul_jobs::StoreError) -> Self {
        JobError::retryable(format!("the database failed: {err}"))
    }
}

/// What a successful attempt returns: the job's `result`, if any.
pub type JobResult = Result<Option<Value>, JobError>;
