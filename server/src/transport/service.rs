//! The gRPC service: each handler converts the request, calls the run manager, converts back.

use std::{pin::Pin, sync::Arc};

use strata_proto::{
    strata_server::Strata, CancelRunRequest, CancelRunResponse, CompareRunsRequest,
    CompareRunsResponse, CreateRunRequest, CreateRunResponse, DeleteRunRequest, DeleteRunResponse,
    FinishRunRequest, FinishRunResponse, GetRunRequest, GetRunResponse, GetRunStepsRequest,
    GetRunStepsResponse, GetServerInfoRequest, ListRunsRequest, ListRunsResponse,
    ListWorkersRequest, ListWorkersResponse, LogEpochsRequest, LogEpochsResponse, LogStepsRequest,
    LogStepsResponse, LrFindEvent, LrFindRequest, ResumeRunRequest, ResumeRunResponse, ServerInfo,
    StartRunRequest, StartRunResponse, WatchEvent, WatchRunRequest,
};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert;
use crate::runs::{
    CreateExternal, EpochsWanted, ListFilter, LoggedEpoch, LrFindRequest as LrFindJobRequest, Runs,
    StartRequest,
};

pub struct StrataService {
    runs: Arc<Runs>,
    data_dir: String,
}

impl StrataService {
    pub fn new(runs: Arc<Runs>, data_dir: String) -> Self {
        StrataService { runs, data_dir }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send + 'static>>;
type LrFindStream = Pin<Box<dyn Stream<Item = Result<LrFindEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Strata for StrataService {
    async fn start_run(
        &self,
        request: Request<StartRunRequest>,
    ) -> Result<Response<StartRunResponse>, Status> {
        let request = StartRequest::try_from(request.into_inner())?;
        let started = self.runs.start(request).await?;
        Ok(Response::new(started.into()))
    }

    async fn get_run(
        &self,
        request: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let GetRunRequest {
            run,
            thresholds,
            from_epoch,
        } = request.into_inner();
        let thresholds = convert::thresholds(thresholds)?;
        let wanted = match from_epoch {
            0 => EpochsWanted::Whole,
            from_epoch => EpochsWanted::Page { from_epoch },
        };
        let detail = self.runs.get(&run, thresholds, wanted).await?;
        Ok(Response::new(detail.into()))
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let filter = ListFilter::try_from(request.into_inner())?;
        let runs = self.runs.list(filter).await?;
        Ok(Response::new(ListRunsResponse {
            runs: runs.into_iter().map(Into::into).collect(),
        }))
    }

    type WatchRunStream = WatchStream;

    async fn watch_run(
        &self,
        request: Request<WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let WatchRunRequest { run, from_epoch } = request.into_inner();
        let watch = self.runs.watch(&run, from_epoch).await?;
        let metric = watch.metric;
        let events = tokio_stream::wrappers::ReceiverStream::new(watch.events).map(move |event| {
            event
                .map(|event| convert::event_to_proto(event, metric))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(events)))
    }

    type LrFindStream = LrFindStream;

    async fn lr_find(
        &self,
        request: Request<LrFindRequest>,
    ) -> Result<Response<Self::LrFindStream>, Status> {
        let request = LrFindJobRequest::try_from(request.into_inner())?;
        let events = self.runs.lr_find(request).await?;
        let events = tokio_stream::wrappers::ReceiverStream::new(events).map(|event| {
            event
                .map(convert::lr_find_event_to_proto)
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(events)))
    }

    async fn cancel_run(
        &self,
        request: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        let CancelRunRequest { run, reason } = request.into_inner();
        let run = self.runs.cancel(&run, reason).await?;
        Ok(Response::new(CancelRunResponse {
            run: Some(run.into()),
        }))
    }

    async fn get_server_info(
        &self,
        _: Request<GetServerInfoRequest>,
    ) -> Result<Response<ServerInfo>, Status> {
        let (running, queued) = self.runs.load();
        Ok(Response::new(ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            devices: self.runs.devices(),
            max_concurrent_runs: self.runs.max_concurrent_runs() as u32,
            data_dir: self.data_dir.clone(),
            running_runs: running as u32,
            queued_runs: queued as u32,
            run_id_tag: u32::from(self.runs.run_id_tag().value()),
            remote_workers: self
                .runs
                .remote_workers()
                .map_or(0, |(workers, _, _)| workers.len() as u32),
            takes_remote_workers: self.runs.remote_workers().is_some(),
        }))
    }

    async fn list_workers(
        &self,
        _: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        let Some((workers, heartbeat_timeout_s, worker_retries)) = self.runs.remote_workers()
        else {
            return Ok(Response::new(ListWorkersResponse::default()));
        };
        Ok(Response::new(ListWorkersResponse {
            workers: workers.into_iter().map(convert::worker_to_proto).collect(),
            heartbeat_timeout_s,
            worker_retries,
        }))
    }

    async fn compare_runs(
        &self,
        request: Request<CompareRunsRequest>,
    ) -> Result<Response<CompareRunsResponse>, Status> {
        let CompareRunsRequest {
            runs: names,
            thresholds,
        } = request.into_inner();
        let thresholds = convert::thresholds(thresholds)?;
        let comparison = self.runs.compare(names, thresholds).await?;
        Ok(Response::new(comparison.into()))
    }

    async fn resume_run(
        &self,
        request: Request<ResumeRunRequest>,
    ) -> Result<Response<ResumeRunResponse>, Status> {
        let ResumeRunRequest { run, epochs } = request.into_inner();
        let run = self.runs.resume(&run, epochs).await?;
        Ok(Response::new(ResumeRunResponse {
            run: Some(run.into()),
        }))
    }

    async fn delete_run(
        &self,
        request: Request<DeleteRunRequest>,
    ) -> Result<Response<DeleteRunResponse>, Status> {
        let DeleteRunRequest { run } = request.into_inner();
        let id = self.runs.delete(&run).await?;
        Ok(Response::new(DeleteRunResponse {
            run_id: id.to_string(),
        }))
    }

    async fn create_run(
        &self,
        request: Request<CreateRunRequest>,
    ) -> Result<Response<CreateRunResponse>, Status> {
        let request = CreateExternal::try_from(request.into_inner())?;
        let created = self.runs.create_external(request).await?;
        Ok(Response::new(CreateRunResponse {
            run: Some(created.state.into()),
            existing: created.existing,
            silence_timeout_ms: self.runs.external_timeout().as_millis() as u64,
        }))
    }

    async fn log_steps(
        &self,
        request: Request<LogStepsRequest>,
    ) -> Result<Response<LogStepsResponse>, Status> {
        let LogStepsRequest { run, steps } = request.into_inner();
        let steps = steps.into_iter().map(Into::into).collect();
        let logged = self.runs.log_steps(&run, steps).await?;
        Ok(Response::new(logged.into()))
    }

    async fn get_run_steps(
        &self,
        request: Request<GetRunStepsRequest>,
    ) -> Result<Response<GetRunStepsResponse>, Status> {
        let GetRunStepsRequest { run, max_points } = request.into_inner();
        let steps = self.runs.run_steps(&run, max_points).await?;
        Ok(Response::new(steps.into()))
    }

    async fn log_epochs(
        &self,
        request: Request<LogEpochsRequest>,
    ) -> Result<Response<LogEpochsResponse>, Status> {
        let LogEpochsRequest { run, epochs } = request.into_inner();
        let epochs = epochs
            .into_iter()
            .map(LoggedEpoch::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let logged = self.runs.log_epochs(&run, epochs).await?;
        Ok(Response::new(logged.into()))
    }

    async fn finish_run(
        &self,
        request: Request<FinishRunRequest>,
    ) -> Result<Response<FinishRunResponse>, Status> {
        let FinishRunRequest {
            run,
            status,
            reason,
        } = request.into_inner();
        let end = convert::external_end(status)?;
        let run = self.runs.finish_external(&run, end, reason).await?;
        Ok(Response::new(FinishRunResponse {
            run: Some(run.into()),
        }))
    }
}
