use super::{
    Model, ModelChanges, ModelCommand, ModelError, ModelEvent, ModelRegistered, ModelState,
    RegisterModel, UpdateModel, recommended_data_volume_gb, validate_repo_id,
};

/// The catalog's rules: the events a command causes on a model, or why it is refused.
/// Commands that would change nothing (activating an active model, an update with the current
/// values) succeed with no event, so retrying them is harmless.
pub fn decide(model: &Model, command: ModelCommand) -> Result<Vec<ModelEvent>, ModelError> {
    match (&model.state, command) {
        (Some(state), ModelCommand::Register(_)) => Err(ModelError::AlreadyRegistered {
            hf_repo_id: state.hf_repo_id.clone(),
        }),
        (None, ModelCommand::Register(cmd)) => register(cmd).map(|e| vec![e]),
        (None, _) => Err(ModelError::NotRegistered),
        (Some(state), ModelCommand::Update(cmd)) => {
            let changes = update(state, cmd)?;
            Ok(if changes.is_empty() {
                vec![]
            } else {
                vec![ModelEvent::ModelUpdated(changes)]
            })
        }
        (Some(state), ModelCommand::Activate) => Ok(if state.active {
            vec![]
        } else {
            vec![ModelEvent::ModelActivated]
        }),
        (Some(state), ModelCommand::Deactivate) => Ok(if state.active {
            vec![ModelEvent::ModelDeactivated]
        } else {
            vec![]
        }),
    }
}

fn register(cmd: RegisterModel) -> Result<ModelEvent, ModelError> {
    let hf_repo_id = cmd.hf_repo_id.trim().to_string();
    validate_repo_id(&hf_repo_id)?;
    let parameter_count = parameter_count(cmd.parameter_count)?;
    let (data_volume_gb, data_volume_computed) = match cmd.data_volume_gb {
        Some(v) => (data_volume(v)?, false),
        None => (recommended_data_volume_gb(parameter_count), true),
    };
    Ok(ModelEvent::ModelRegistered(ModelRegistered {
        hf_repo_id,
        display_name: display_name(&cmd.display_name)?,
        parameter_count,
        required_vram_gb: vram(cmd.required_vram_gb)?,
        context_length: context_length(cmd.context_length)?,
        data_volume_gb,
        data_volume_computed,
        task: cmd.task,
        active: cmd.active,
    }))
}

fn update(state: &ModelState, cmd: UpdateModel) -> Result<ModelChanges, ModelError> {
    let mut changes = ModelChanges::default();
    if let Some(v) = cmd.display_name {
        let v = display_name(&v)?;
        changes.display_name = (v != state.display_name).then_some(v);
    }
    if let Some(v) = cmd.parameter_count {
        let v = parameter_count(v)?;
        changes.parameter_count = (v != state.parameter_count).then_some(v);
    }
    if let Some(v) = cmd.required_vram_gb {
        let v = vram(v)?;
        changes.required_vram_gb = (v != state.required_vram_gb).then_some(v);
    }
    if let Some(v) = cmd.context_length {
        let v = context_length(v)?;
        changes.context_length = (v != state.context_length).then_some(v);
    }
    if let Some(v) = cmd.task {
        changes.task = (v != state.task).then_some(v);
    }
    match cmd.data_volume_gb {
        // An explicit volume pins it: later parameter changes no longer resize it.
        Some(v) => {
            let v = data_volume(v)?;
            changes.data_volume_gb = (v != state.data_volume_gb).then_some(v);
            changes.data_volume_computed = state.data_volume_computed.then_some(false);
        }
        None if state.data_volume_computed => {
            if let Some(p) = changes.parameter_count {
                let v = recommended_data_volume_gb(p);
                changes.data_volume_gb = (v != state.data_volume_gb).then_some(v);
            }
        }
        None => {}
    }
    Ok(changes)
}

fn display_name(value: &str) -> Result<String, ModelError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ModelError::EmptyDisplayName);
    }
    if v.chars().count() > 200 {
        return Err(ModelError::DisplayNameTooLong);
    }
    Ok(v.to_string())
}

fn parameter_count(value: i64) -> Result<u64, ModelError> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or(ModelError::NonPositiveParameterCount { value })
}

fn vram(value: i64) -> Result<u32, ModelError> {
    if value <= 0 {
        return Err(ModelError::NonPositiveVram { value });
    }
    u32::try_from(value)
        .ok()
        .filter(|v| *v <= 100_000)
        .ok_or(ModelError::VramTooLarge { value })
}

fn context_length(value: i64) -> Result<u32, ModelError> {
    if value <= 0 {
        return Err(ModelError::NonPositiveContextLength { value });
    }
    u32::try_from(value)
        .ok()
        .filter(|v| *v <= 16_777_216)
        .ok_or(ModelError::ContextLengthTooLarge { value })
}

fn data_volume(value: i64) -> Result<u32, ModelError> {
    u32::try_from(value)
        .ok()
        .filter(|v| (10..=100_000).contains(v))
        .ok_or(ModelError::DataVolumeOutOfRange { value })
}
