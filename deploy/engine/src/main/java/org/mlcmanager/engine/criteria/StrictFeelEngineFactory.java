package org.mlcmanager.engine.criteria;

import org.camunda.bpm.dmn.feel.impl.FeelEngine;
import org.camunda.bpm.dmn.feel.impl.scala.ScalaFeelEngineFactory;

/** Makes the DMN engine evaluate FEEL with {@link StrictFeelEngine}. */
public class StrictFeelEngineFactory extends ScalaFeelEngineFactory {

  @Override
  public FeelEngine createInstance() {
    return new StrictFeelEngine(customFunctionProviders);
  }
}
