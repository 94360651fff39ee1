package org.mlcmanager.engine;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * Settings of the MLC Manager engine beyond Camunda's own ({@code mlc.*} in application.yaml, bound
 * from the MLC_ENGINE_* environment variables there).
 *
 * @param bpmnDir folder whose *.bpmn, *.dmn and *.form files are deployed on start; empty = none
 * @param deploymentName name of the deployment that holds them
 * @param restAuth whether /engine-rest requires HTTP basic authentication
 */
@ConfigurationProperties(prefix = "mlc")
public record MlcEngineProperties(String bpmnDir, String deploymentName, boolean restAuth) {}
